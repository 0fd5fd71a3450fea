//! Delivery reports: what an SMS provider says became of a message to one recipient, in Sinch's
//! terms, and which report codes mean the recipient opted out at the carrier.

use std::collections::BTreeSet;
use std::fmt;

/// A recipient's delivery status, as Sinch names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReportStatus {
    Queued,
    Dispatched,
    Aborted,
    Cancelled,
    Rejected,
    Deleted,
    Delivered,
    Failed,
    Expired,
    Unknown,
}

impl ReportStatus {
    pub const ALL: [ReportStatus; 10] = [
        ReportStatus::Queued,
        ReportStatus::Dispatched,
        ReportStatus::Aborted,
        ReportStatus::Cancelled,
        ReportStatus::Rejected,
        ReportStatus::Deleted,
        ReportStatus::Delivered,
        ReportStatus::Failed,
        ReportStatus::Expired,
        ReportStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Queued => "Queued",
            ReportStatus::Dispatched => "Dispatched",
            ReportStatus::Aborted => "Aborted",
            ReportStatus::Cancelled => "Cancelled",
            ReportStatus::Rejected => "Rejected",
            ReportStatus::Deleted => "Deleted",
            ReportStatus::Delivered => "Delivered",
            ReportStatus::Failed => "Failed",
            ReportStatus::Expired => "Expired",
            ReportStatus::Unknown => "Unknown",
        }
    }

    /// Sinch's spelling, whatever the case (`DELIVERED`, `delivered`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether nothing more will be reported after it: a later report of a message in transit
    /// does not replace it.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ReportStatus::Queued | ReportStatus::Dispatched | ReportStatus::Unknown
        )
    }
}

impl fmt::Display for ReportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Report codes that mean the recipient has opted out (or blocked the sender) at the carrier: a
/// report with one opts the contact out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutCodes(BTreeSet<i64>);

impl OptOutCodes {
    pub fn new(codes: impl IntoIterator<Item = i64>) -> Self {
        Self(codes.into_iter().collect())
    }

    /// A comma-separated list of codes.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|code| !code.is_empty())
            .map(|code| {
                code.parse::<i64>()
                    .map_err(|_| format!("{code:?} is not a report code (a whole number)"))
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    pub fn contains(&self, code: i64) -> bool {
        self.0.contains(&code)
    }

    pub fn codes(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().copied()
    }
}

impl Default for OptOutCodes {
    /// The codes providers use for a recipient who opted out, as documented by them (see
    /// docs/api.md for each): Twilio's 21610 (unsubscribed recipient), Telnyx's 40300 (blocked
    /// by STOP), Plivo's 200 (source number blocked by STOP), Bandwidth's 4775 (carrier
    /// rejected due to user opt out).
    fn default() -> Self {
        Self::new(DEFAULT_OPT_OUT_CODES)
    }
}

/// The default opt-out codes, each a provider's documented "the recipient opted out".
pub const DEFAULT_OPT_OUT_CODES: [i64; 4] = [21610, 40300, 200, 4775];

/// The batch and chunk a Roster-made `client_reference` names (`roster:{batch}:{chunk}`, as the
/// `http` sender tags each chunk it hands over).
pub fn roster_reference(reference: &str) -> Option<(&str, i64)> {
    let rest = reference.strip_prefix("roster:")?;
    let (batch, chunk) = rest.rsplit_once(':')?;
    Some((batch, chunk.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_in_any_case_and_know_their_finality() {
        assert_eq!(
            ReportStatus::parse("DELIVERED"),
            Some(ReportStatus::Delivered)
        );
        assert_eq!(
            ReportStatus::parse("dispatched"),
            Some(ReportStatus::Dispatched)
        );
        assert_eq!(ReportStatus::parse("Sent"), None);
        assert!(ReportStatus::Failed.is_final());
        assert!(!ReportStatus::Queued.is_final());
    }

    #[test]
    fn codes_are_a_list_of_numbers() {
        let codes = OptOutCodes::parse("21610, 40300,,8").unwrap();
        assert!(codes.contains(8) && codes.contains(21610) && !codes.contains(0));
        assert!(OptOutCodes::parse("8,x").is_err());
        assert!(OptOutCodes::default().contains(21610));
    }

    #[test]
    fn a_roster_reference_names_batch_and_chunk() {
        assert_eq!(
            roster_reference("roster:01JG0000000000000000000000:3"),
            Some(("01JG0000000000000000000000", 3))
        );
        assert_eq!(roster_reference("order-17"), None);
        assert_eq!(roster_reference("roster:x:y"), None);
    }
}
