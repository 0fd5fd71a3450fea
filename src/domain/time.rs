//! Timestamps: stored as milliseconds since the Unix epoch, shown as UTC with milliseconds and
//! `Z` (`2026-11-23T05:41:50.123Z`), the format Sinch documents.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Reads an ISO-8601 / RFC 3339 date-time with an offset (`2026-11-23T05:41:50Z`,
    /// `…+01:00`, fractions of a second allowed).
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        DateTime::parse_from_rfc3339(input.trim())
            .map(|at| Self(at.timestamp_millis()))
            .map_err(|_| TimestampError)
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    pub fn to_rfc3339(self) -> String {
        self.to_utc().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub fn to_utc(self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(self.0).unwrap_or(DateTime::UNIX_EPOCH)
    }

    pub fn from_utc(at: DateTime<Utc>) -> Self {
        Self(at.timestamp_millis())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not a date-time such as 2026-11-23T05:41:50Z (ISO 8601 with a time zone)")]
pub struct TimestampError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(
            Timestamp::from_millis(1_700_000_000_007).to_rfc3339(),
            "2023-11-14T22:13:20.007Z"
        );
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let at = Timestamp::parse_rfc3339("2023-11-14T23:13:20.007+01:00");
        assert_eq!(at, Ok(Timestamp::from_millis(1_700_000_000_007)));
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14 22:13"),
            Err(TimestampError)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T22:13:20"),
            Err(TimestampError)
        );
    }
}
