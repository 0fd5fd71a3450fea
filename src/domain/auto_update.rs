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
    fn to_is_a_short_code_or_number() {
        assert!(ShortCodeOrNumber::parse("12345").is_ok());
        assert!(ShortCodeOrNumber::parse("+15551231234").is_ok());
        assert!(ShortCodeOrNumber::parse("12").is_err());
        assert!(ShortCodeOrNumber::parse("+1-555").is_err());
    }
}
