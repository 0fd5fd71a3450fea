//! Keyword messages: what an inbound SMS asks for. Opt-out and opt-in words apply to everything
//! the plan sends; a group's `auto_update` words add the sender to the group or remove them.
//!
//! A message is a consent keyword only when, trimmed, case-folded and stripped of trailing
//! punctuation, it *is* the keyword: "Stop." and " stop " opt out, "We have got to STOP this"
//! does not.

use super::auto_update::{AutoUpdate, KeywordPair};

/// The FCC's opt-out words, Roster's default.
pub const DEFAULT_OPT_OUT: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
pub const DEFAULT_OPT_IN: [&str; 2] = ["START", "UNSTOP"];

/// A plan's consent keywords, stored upper-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentKeywords {
    opt_out: Vec<String>,
    opt_in: Vec<String>,
}

impl Default for ConsentKeywords {
    fn default() -> Self {
        Self {
            opt_out: DEFAULT_OPT_OUT.iter().map(|w| (*w).to_owned()).collect(),
            opt_in: DEFAULT_OPT_IN.iter().map(|w| (*w).to_owned()).collect(),
        }
    }
}

/// Which of a plan's two lists a word is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentList {
    OptOut,
    OptIn,
}

impl ConsentList {
    /// The list's name in requests.
    pub fn field(self) -> &'static str {
        match self {
            ConsentList::OptOut => "opt_out",
            ConsentList::OptIn => "opt_in",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentKeywordsError {
    /// The `index`-th word of `list`.
    #[error(
        "{word:?} is not a single word of letters or digits of at most {max} characters",
        max = ConsentKeywords::MAX_WORD_CHARS
    )]
    NotAWord {
        list: ConsentList,
        index: usize,
        word: String,
    },
    /// The `index`-th opt-in word is also an opt-out word.
    #[error("{word:?} is both an opt-out and an opt-in word")]
    Both { index: usize, word: String },
    #[error("at least one opt-out word is required")]
    NoOptOut,
}

impl ConsentKeywords {
    /// Longer than a group's keyword (15, as Sinch allows): a plan's own opt-out words are not
    /// bound by Sinch, and words stored under this limit must keep loading.
    pub const MAX_WORD_CHARS: usize = 20;

    pub fn new(opt_out: &[String], opt_in: &[String]) -> Result<Self, ConsentKeywordsError> {
        let clean = |list: ConsentList, words: &[String]| {
            words
                .iter()
                .enumerate()
                .map(|(index, word)| {
                    let upper = word.trim().to_uppercase();
                    let valid = !upper.is_empty()
                        && upper.chars().count() <= Self::MAX_WORD_CHARS
                        && upper.chars().all(char::is_alphanumeric);
                    if valid {
                        Ok(upper)
                    } else {
                        Err(ConsentKeywordsError::NotAWord {
                            list,
                            index,
                            word: word.clone(),
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let opt_out = clean(ConsentList::OptOut, opt_out)?;
        let opt_in = clean(ConsentList::OptIn, opt_in)?;
        if opt_out.is_empty() {
            return Err(ConsentKeywordsError::NoOptOut);
        }
        if let Some((index, word)) = opt_in
            .iter()
            .enumerate()
            .find(|(_, word)| opt_out.contains(word))
        {
            return Err(ConsentKeywordsError::Both {
                index,
                word: word.clone(),
            });
        }
        Ok(Self { opt_out, opt_in })
    }

    pub fn opt_out(&self) -> &[String] {
        &self.opt_out
    }

    pub fn opt_in(&self) -> &[String] {
        &self.opt_in
    }

    pub fn classify(&self, body: &str) -> Option<Consent> {
        let message = normalize(body);
        if self.opt_out.contains(&message) {
            Some(Consent::OptOut)
        } else if self.opt_in.contains(&message) {
            Some(Consent::OptIn)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    OptOut,
    OptIn,
}

/// What a message addressed to a group's keyword number asks of that group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRequest {
    Join,
    Leave,
}

/// Trimmed, trailing punctuation removed, upper-cased (Unicode-aware).
pub fn normalize(body: &str) -> String {
    body.trim()
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || is_unicode_punctuation(c))
        .trim_end()
        .to_uppercase()
}

fn is_unicode_punctuation(c: char) -> bool {
    matches!(
        c,
        '¡' | '¿' | '…' | '。' | '！' | '？' | '、' | '，' | '«' | '»'
    )
}

/// Whether `words` begin with the pair: the first word, and the second word when the pair has one
/// (a shared short code, where the first word names the brand).
fn starts_with(words: &[&str], pair: &KeywordPair) -> bool {
    let first = words
        .first()
        .is_some_and(|w| w.to_uppercase() == pair.first_word.as_str().to_uppercase());
    match &pair.second_word {
        None => first,
        Some(second) => {
            first
                && words
                    .get(1)
                    .is_some_and(|w| w.to_uppercase() == second.as_str().to_uppercase())
        }
    }
}

/// What `body`, sent to `to`, asks of a group with this `auto_update`; unknown words ask nothing.
/// A pair with a second word is more specific and is checked first, so that on a shared short
/// code "ACME LEAVE" is not read as the one-word "ACME".
pub fn group_request(auto_update: &AutoUpdate, to: &str, body: &str) -> Option<GroupRequest> {
    if digits_of(auto_update.to.as_str()) != digits_of(to) {
        return None;
    }
    let message = normalize(body);
    let words: Vec<&str> = message.split_whitespace().collect();
    let mut candidates: Vec<(&KeywordPair, GroupRequest)> = Vec::new();
    if let Some(add) = &auto_update.add {
        candidates.push((add, GroupRequest::Join));
    }
    if let Some(remove) = &auto_update.remove {
        candidates.push((remove, GroupRequest::Leave));
    }
    candidates.sort_by_key(|(pair, _)| pair.second_word.is_none());
    candidates
        .into_iter()
        .find(|(pair, _)| starts_with(&words, pair))
        .map(|(_, request)| request)
}

/// Numbers compare by digits alone: "+1 555 123" is "1555123".
fn digits_of(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auto_update::{Keyword, ShortCodeOrNumber};

    #[test]
    fn consent_keywords_match_the_whole_message() {
        let keywords = ConsentKeywords::default();
        for body in [
            "STOP",
            "stop",
            " Stop. ",
            "stop!!",
            "Unsubscribe",
            "quit?",
            "STOP…",
        ] {
            assert_eq!(keywords.classify(body), Some(Consent::OptOut), "{body:?}");
        }
        for body in ["START", "unstop", "Start!"] {
            assert_eq!(keywords.classify(body), Some(Consent::OptIn), "{body:?}");
        }
        for body in [
            "We have got to STOP this",
            "STOP IT",
            "stopp",
            "",
            "S T O P",
            "START NOW",
        ] {
            assert_eq!(keywords.classify(body), None, "{body:?}");
        }
    }

    #[test]
    fn plans_choose_their_own_words() {
        let keywords =
            ConsentKeywords::new(&["arrêt".into(), "STOP".into()], &["go".into()]).unwrap();
        assert_eq!(keywords.classify("Arrêt."), Some(Consent::OptOut));
        assert_eq!(keywords.classify("GO"), Some(Consent::OptIn));
        assert_eq!(keywords.classify("START"), None);
        assert!(ConsentKeywords::new(&[], &[]).is_err());
        assert!(ConsentKeywords::new(&["two words".into()], &[]).is_err());
        assert!(ConsentKeywords::new(&["STOP".into()], &["stop".into()]).is_err());
        let at_limit = "W".repeat(ConsentKeywords::MAX_WORD_CHARS);
        assert!(ConsentKeywords::new(std::slice::from_ref(&at_limit), &[]).is_ok());
        assert_eq!(
            ConsentKeywords::new(&["STOP".into()], &["GO".into(), format!("{at_limit}W")]),
            Err(ConsentKeywordsError::NotAWord {
                list: ConsentList::OptIn,
                index: 1,
                word: format!("{at_limit}W"),
            })
        );
    }

    fn pair(first: &str, second: Option<&str>) -> KeywordPair {
        KeywordPair {
            first_word: Keyword::parse(first).unwrap(),
            second_word: second.map(|w| Keyword::parse(w).unwrap()),
        }
    }

    #[test]
    fn group_words_on_a_dedicated_number() {
        let auto = AutoUpdate {
            to: ShortCodeOrNumber::parse("+15551231234").unwrap(),
            add: Some(pair("JOIN", None)),
            remove: Some(pair("LEAVE", None)),
            double_opt_in: None,
        };
        assert_eq!(
            group_request(&auto, "+15551231234", "join"),
            Some(GroupRequest::Join)
        );
        assert_eq!(
            group_request(&auto, "15551231234", "Join please"),
            Some(GroupRequest::Join)
        );
        assert_eq!(
            group_request(&auto, "+15551231234", "leave."),
            Some(GroupRequest::Leave)
        );
        assert_eq!(group_request(&auto, "+15551231234", "hello"), None);
        // Another number's keywords are not this group's.
        assert_eq!(group_request(&auto, "+15559999999", "JOIN"), None);
    }

    #[test]
    fn group_words_on_a_shared_short_code() {
        let auto = AutoUpdate {
            to: ShortCodeOrNumber::parse("12345").unwrap(),
            add: Some(pair("ACME", None)),
            remove: Some(pair("ACME", Some("LEAVE"))),
            double_opt_in: None,
        };
        assert_eq!(
            group_request(&auto, "12345", "acme"),
            Some(GroupRequest::Join)
        );
        assert_eq!(
            group_request(&auto, "12345", "ACME leave"),
            Some(GroupRequest::Leave)
        );
        assert_eq!(group_request(&auto, "12345", "OTHER join"), None);
    }
}
