//! The one rule all text obeys, wherever it comes from (a request body, a query parameter, a cell
//! of an imported file): it never holds U+0000 (NUL).
//!
//! PostgreSQL cannot store U+0000 in `text` or `jsonb` at all, and SQLite stores it but C tools and
//! many drivers cut the text there, so a NUL that reached the store would fail on one backend and
//! be kept on the other. Refusing it before the store keeps both the same.
//!
//! Other control characters are left to each value's own type: values of one line (names, email,
//! gender, keywords, a batch's `from` and `client_reference`) refuse every control character, a
//! batch's `body` all but tab and line breaks; free text that is only stored and shown (a group's
//! description, custom field values, an inbound message) keeps them as given, identically on
//! both backends.

/// Why text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must not contain the character U+0000 (NUL)")]
pub struct NulError;

/// Refuses text holding U+0000.
pub fn refuse_nul(text: &str) -> Result<(), NulError> {
    if text.contains('\0') {
        Err(NulError)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nul_is_refused() {
        assert_eq!(refuse_nul("a\0b"), Err(NulError));
        assert_eq!(refuse_nul("\0"), Err(NulError));
        assert_eq!(refuse_nul(""), Ok(()));
        assert_eq!(refuse_nul("tab\tline\nbell\u{7}é"), Ok(()));
    }
}
