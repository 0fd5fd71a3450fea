//! Batches: a message to groups and numbers. What a batch targets is kept as the client named it;
//! the recipients are worked out only when it is sent.

use std::collections::BTreeSet;

use super::ids::GroupId;
use super::msisdn::ParsedNumber;

/// Where a batch is in its life. It only ever moves forward:
/// scheduled → sending → sent, with failed and canceled as the other ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    /// Waiting for its `send_at`.
    Scheduled,
    /// Claimed by an instance, which is resolving it or handing it to the sender.
    Sending,
    Sent,
    /// Expired before it was sent, or refused by the sender.
    Failed,
    Canceled,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Some(match input {
            "scheduled" => Self::Scheduled,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// Whether the batch can no longer change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Sent | Self::Failed | Self::Canceled)
    }
}

/// Groups and numbers, as a batch's `to` or `exclude` names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    pub groups: BTreeSet<GroupId>,
    /// E.164, with `+`.
    pub numbers: BTreeSet<String>,
}

impl Audience {
    /// Sorts each entry of a `to` list: a group id, or otherwise a number.
    pub fn from_entries(entries: impl IntoIterator<Item = Target>) -> Self {
        let mut audience = Self::default();
        for entry in entries {
            match entry {
                Target::Group(id) => {
                    audience.groups.insert(id);
                }
                Target::Number(number) => {
                    audience.numbers.insert(number.msisdn.as_str().to_owned());
                }
            }
        }
        audience
    }

    /// The entries as stored and shown: group ids, then numbers.
    pub fn entries(&self) -> Vec<String> {
        self.groups
            .iter()
            .map(|id| id.as_str().to_owned())
            .chain(self.numbers.iter().cloned())
            .collect()
    }

    /// Reads back entries written by [`Audience::entries`].
    pub fn from_stored(entries: &[String]) -> Self {
        let mut audience = Self::default();
        for entry in entries {
            match GroupId::parse(entry) {
                Some(id) => {
                    audience.groups.insert(id);
                }
                None => {
                    audience.numbers.insert(entry.clone());
                }
            }
        }
        audience
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.numbers.is_empty()
    }
}

/// One entry of a `to` or `exclude` list.
#[derive(Debug, Clone)]
pub enum Target {
    Group(GroupId),
    Number(ParsedNumber),
}

/// How the error of a batch that expired before it was sent begins.
pub const EXPIRED: &str = "expired at";

/// The longest message body, in characters, as Sinch allows.
pub const MAX_BODY_CHARS: usize = 2000;

/// The longest sender (`from`): a number, a short code or an alphanumeric sender id.
pub const MAX_FROM_CHARS: usize = 32;

/// The longest `client_reference`, as Sinch allows.
pub const MAX_CLIENT_REFERENCE_CHARS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchTextError {
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("contains control characters")]
    Control,
}

/// Checks a free-text field of a batch: at most `max` characters; no control characters except
/// line breaks and tabs in the body.
pub fn check_text(input: &str, max: usize, allow_breaks: bool) -> Result<(), BatchTextError> {
    if input.chars().count() > max {
        return Err(BatchTextError::TooLong(max));
    }
    let bad = input
        .chars()
        .any(|ch| ch.is_control() && !(allow_breaks && matches!(ch, '\n' | '\r' | '\t')));
    if bad {
        return Err(BatchTextError::Control);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in [
            BatchStatus::Scheduled,
            BatchStatus::Sending,
            BatchStatus::Sent,
            BatchStatus::Failed,
            BatchStatus::Canceled,
        ] {
            assert_eq!(BatchStatus::parse(status.as_str()), Some(status));
        }
        assert!(BatchStatus::Sent.is_final());
        assert!(!BatchStatus::Sending.is_final());
    }

    #[test]
    fn stored_entries_read_back_as_groups_and_numbers() {
        let group = GroupId::generate();
        let stored = vec![group.as_str().to_owned(), "+14155552671".to_owned()];
        let audience = Audience::from_stored(&stored);
        assert!(audience.groups.contains(&group));
        assert!(audience.numbers.contains("+14155552671"));
        assert_eq!(audience.entries(), stored);
    }

    #[test]
    fn text_limits() {
        assert_eq!(check_text("hi\nthere", 10, true), Ok(()));
        assert_eq!(
            check_text("hi\nthere", 10, false),
            Err(BatchTextError::Control)
        );
        assert_eq!(check_text("ééé", 2, true), Err(BatchTextError::TooLong(2)));
    }
}
