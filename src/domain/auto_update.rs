//! A group's `auto_update`: the keywords by which people text in to join or leave it.

/// A keyword: letters, digits or `_` only (Sinch's `^\w+$`), 1 to 15 characters, kept as given
/// and compared case-insensitively when a message arrives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Keyword(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters", max = Keyword::MAX_CHARS)]
    TooLong,
    #[error("must be a single word of letters, digits or _")]
    NotAWord,
}

impl Keyword {
    pub const MAX_CHARS: usize = 15;

    pub fn parse(input: &str) -> Result<Self, KeywordError> {
        if input.is_empty() {
            return Err(KeywordError::Empty);
        }
        if input.chars().count() > Self::MAX_CHARS {
            return Err(KeywordError::TooLong);
        }
        if !input.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(KeywordError::NotAWord);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The number people text (`to`): a short code or a long number, digits with an optional `+`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShortCodeOrNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a short code or phone number: 3 to 15 digits, optionally after +")]
pub struct ShortCodeOrNumberError;

impl ShortCodeOrNumber {
    pub fn parse(input: &str) -> Result<Self, ShortCodeOrNumberError> {
        let digits = input.strip_prefix('+').unwrap_or(input);
        let valid = (3..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(ShortCodeOrNumberError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first word, and on a shared short code the second word, of a keyword message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeywordPair {
    pub first_word: Keyword,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_word: Option<Keyword>,
}

/// Stored as JSON; deserialising re-validates every word, so only valid values come back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AutoUpdate {
    pub to: ShortCodeOrNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<KeywordPair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<KeywordPair>,
    /// Joining needs confirming (double opt-in): a join is pending until its number replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_opt_in: Option<DoubleOptIn>,
}

/// Double opt-in: the message sent (from `to`) to a number that asked to join or was added
/// pending its confirmation, the words that confirm, and how long the request stays open.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DoubleOptIn {
    pub text: String,
    pub words: Vec<Keyword>,
    pub hours: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoubleOptInError {
    #[error("must be 1 to {max} characters", max = DoubleOptIn::MAX_TEXT_CHARS)]
    Text,
    #[error("must name 1 to {max} words", max = DoubleOptIn::MAX_WORDS)]
    Words,
    #[error("must be 1 to {max} hours", max = DoubleOptIn::MAX_HOURS)]
    Hours,
}

impl DoubleOptIn {
    pub const MAX_TEXT_CHARS: usize = 1_000;
    pub const MAX_WORDS: usize = 10;
    pub const MAX_HOURS: u32 = 720;
    pub const DEFAULT_WORDS: [&'static str; 2] = ["YES", "Y"];
    pub const DEFAULT_HOURS: u32 = 48;

    pub fn new(text: &str, words: Vec<Keyword>, hours: u32) -> Result<Self, DoubleOptInError> {
        if text.trim().is_empty() || text.chars().count() > Self::MAX_TEXT_CHARS {
            return Err(DoubleOptInError::Text);
        }
        if words.is_empty() || words.len() > Self::MAX_WORDS {
            return Err(DoubleOptInError::Words);
        }
        if !(1..=Self::MAX_HOURS).contains(&hours) {
            return Err(DoubleOptInError::Hours);
        }
        Ok(Self {
            text: text.to_owned(),
            words,
            hours,
        })
    }

    /// Whether a reply confirms: one of the words, whatever its case and trailing punctuation.
    pub fn confirms(&self, body: &str) -> bool {
        let said = crate::domain::keywords::normalize(body);
        self.words
            .iter()
            .any(|word| word.as_str().to_uppercase() == said)
    }

    pub fn window_millis(&self) -> i64 {
        i64::from(self.hours) * 60 * 60 * 1000
    }
}

impl TryFrom<String> for Keyword {
    type Error = KeywordError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Keyword> for String {
    fn from(value: Keyword) -> Self {
        value.0
    }
}

impl TryFrom<String> for ShortCodeOrNumber {
    type Error = ShortCodeOrNumberError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ShortCodeOrNumber> for String {
    fn from(value: ShortCodeOrNumber) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_single_short_words() {
        assert!(Keyword::parse("JOIN").is_ok());
        assert!(Keyword::parse("join_2").is_ok());
        assert!(Keyword::parse(&"a".repeat(15)).is_ok());
        assert_eq!(Keyword::parse(&"a".repeat(16)), Err(KeywordError::TooLong));
        assert_eq!(Keyword::parse("two words"), Err(KeywordError::NotAWord));
        assert_eq!(Keyword::parse(""), Err(KeywordError::Empty));
    }

    #[test]
    fn a_confirmation_is_one_of_its_words() {
        let words = ["YES", "Y"].map(|w| Keyword::parse(w).unwrap()).to_vec();
        let confirm = DoubleOptIn::new("Reply YES to join", words.clone(), 48).unwrap();
        assert!(confirm.confirms(" yes! "));
        assert!(confirm.confirms("Y"));
        assert!(!confirm.confirms("yes please"));
        assert_eq!(
            DoubleOptIn::new(" ", words.clone(), 48),
            Err(DoubleOptInError::Text)
        );
        assert_eq!(
            DoubleOptIn::new("x", Vec::new(), 48),
            Err(DoubleOptInError::Words)
        );
        assert_eq!(
            DoubleOptIn::new("x", words, 0),
            Err(DoubleOptInError::Hours)
        );
    }

    #[test]
    fn to_is_a_short_code_or_number() {
        assert!(ShortCodeOrNumber::parse("12345").is_ok());
        assert!(ShortCodeOrNumber::parse("+15551231234").is_ok());
        assert!(ShortCodeOrNumber::parse("12").is_err());
        assert!(ShortCodeOrNumber::parse("+1-555").is_err());
    }
}
