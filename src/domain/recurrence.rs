//! Recurring sends: an RFC 5545 `RRULE` read from a start (`DTSTART`) in a time zone, so that
//! "every Monday at 09:00 in London" stays at 09:00 across clock changes. Occurrences are worked
//! out one at a time, from the last one made, so that a rule running every few seconds for
//! months costs the same as a weekly one.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rrule::{RRule, Unvalidated};

/// Where a series is. Paused and active series may change; canceled and finished ones not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStatus {
    /// Makes each occurrence when it is due.
    Active,
    /// Makes none until resumed; occurrences due meanwhile are skipped.
    Paused,
    Canceled,
    /// Its rule, count or end left no occurrence.
    Finished,
}

impl SeriesStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Canceled => "canceled",
            Self::Finished => "finished",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Some(match input {
            "active" => Self::Active,
            "paused" => Self::Paused,
            "canceled" => Self::Canceled,
            "finished" => Self::Finished,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Canceled | Self::Finished)
    }
}

/// The most occurrences one series may have.
pub const MAX_OCCURRENCES: u32 = 100_000;

/// A rule, its zone and its limits, checked.
#[derive(Debug, Clone)]
pub struct Recurrence {
    /// The rule as given, without `COUNT` (counted here, since occurrences are worked out from
    /// the last one made).
    rule: RRule<Unvalidated>,
    text: String,
    zone: Tz,
    count: Option<u32>,
    ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    #[error("is not an RFC 5545 RRULE: {0}")]
    Rule(String),
    #[error("is not an RFC 5545 RRULE: only ASCII letters, digits and ;=,:+- may appear")]
    NotAscii,
    #[error("COUNT must be 1 to {MAX_OCCURRENCES}")]
    Count,
    #[error("must be an IANA time zone name, such as \"Europe/London\"")]
    Zone,
    #[error("the rule has no occurrence at or after its start and before its end")]
    NoOccurrence,
}

impl Recurrence {
    /// Reads `rule` (with or without the `RRULE:` prefix) for a series starting at `starts_at`
    /// in `zone`, ending (if at all) at `ends_at`.
    pub fn new(
        rule: &str,
        zone: &str,
        ends_at: Option<DateTime<Utc>>,
    ) -> Result<Self, RecurrenceError> {
        let zone: Tz = zone.parse().map_err(|_| RecurrenceError::Zone)?;
        let text = rule.trim();
        // An RRULE is ASCII; the rrule crate slices weekday names by byte and panics on a
        // character that spans the cut.
        if !text.is_ascii() {
            return Err(RecurrenceError::NotAscii);
        }
        let text = text
            .strip_prefix("RRULE:")
            .or_else(|| text.strip_prefix("rrule:"))
            .unwrap_or(text);
        let mut count = None;
        let mut parts = Vec::new();
        for part in text.split(';') {
            match part.split_once('=') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("COUNT") => {
                    let value: u32 = value.trim().parse().map_err(|_| RecurrenceError::Count)?;
                    if !(1..=MAX_OCCURRENCES).contains(&value) {
                        return Err(RecurrenceError::Count);
                    }
                    count = Some(value);
                }
                _ => parts.push(part),
            }
        }
        let rule: RRule<Unvalidated> = parts
            .join(";")
            .parse()
            .map_err(|error: rrule::RRuleError| RecurrenceError::Rule(error.to_string()))?;
        Ok(Recurrence {
            rule,
            text: text.to_owned(),
            zone,
            count,
            ends_at,
        })
    }

    /// The rule as stored and shown (without the `RRULE:` prefix).
    pub fn rule(&self) -> &str {
        &self.text
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first occurrence at or after `starts_at`.
    pub fn first(&self, starts_at: DateTime<Utc>) -> Result<DateTime<Utc>, RecurrenceError> {
        let start = floor_second(starts_at);
        self.occurrence(start, start)?
            .ok_or(RecurrenceError::NoOccurrence)
    }

    /// The occurrence after `last` (the `made`th), not before `not_before`: `None` once the
    /// rule, its count or the series' end has none left.
    pub fn next(
        &self,
        last: DateTime<Utc>,
        made: u32,
        not_before: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if self.count.is_some_and(|count| made >= count) || made >= MAX_OCCURRENCES {
            return None;
        }
        let last = floor_second(last);
        let not_before = floor_second(not_before - Duration::nanoseconds(1)) + Duration::seconds(1);
        let after = (last + Duration::seconds(1)).max(not_before);
        self.occurrence(last, after).ok().flatten()
    }

    /// Where a series resumed at `now` goes on: the first occurrence still to come, after the
    /// last one made (`made` so far) if any, else from its start. Those due while it was paused
    /// are skipped.
    pub fn resume(
        &self,
        starts_at: DateTime<Utc>,
        last: Option<DateTime<Utc>>,
        made: u32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match last {
            Some(last) => self.next(last, made, now),
            None => {
                let start = floor_second(starts_at);
                let now = floor_second(now - Duration::nanoseconds(1)) + Duration::seconds(1);
                self.occurrence(start, start.max(now)).ok().flatten()
            }
        }
    }

    /// The first occurrence at or after `after` of the rule read from `start` (both to the
    /// second, as DTSTART is).
    fn occurrence(
        &self,
        start: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, RecurrenceError> {
        let zone = rrule::Tz::Tz(self.zone);
        let start = start.with_timezone(&zone);
        if self
            .rule
            .get_until()
            .is_some_and(|until| until.with_timezone(&Utc) < start.with_timezone(&Utc))
        {
            return Ok(None);
        }
        let set = self
            .rule
            .clone()
            .build(start)
            .map_err(|error| RecurrenceError::Rule(error.to_string()))?;
        let found = set
            .after(after.with_timezone(&zone))
            .all(1)
            .dates
            .into_iter()
            .next()
            .map(|at| at.with_timezone(&Utc));
        Ok(found.filter(|at| self.ends_at.is_none_or(|end| *at <= end)))
    }
}

fn floor_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at - Duration::nanoseconds(i64::from(at.timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    /// The first `n` occurrences, each worked out from the one before.
    fn run(recurrence: &Recurrence, start: &str, n: usize) -> Vec<String> {
        let mut at = match recurrence.first(utc(start)) {
            Ok(at) => at,
            Err(_) => return Vec::new(),
        };
        let mut seen = vec![at.to_rfc3339()];
        while seen.len() < n {
            match recurrence.next(at, seen.len() as u32, at) {
                Some(next) => {
                    at = next;
                    seen.push(at.to_rfc3339());
                }
                None => break,
            }
        }
        seen
    }

    #[test]
    fn weekly_at_nine_in_london_keeps_the_local_hour() {
        let weekly =
            Recurrence::new("RRULE:FREQ=WEEKLY;BYDAY=MO", "Europe/London", None).expect("a rule");
        // Summer time ends on Sunday 2026-10-25: 09:00 is 08:00 UTC before, 09:00 UTC after.
        assert_eq!(
            run(&weekly, "2026-10-12T08:00:00Z", 3),
            [
                "2026-10-12T08:00:00+00:00",
                "2026-10-19T08:00:00+00:00",
                "2026-10-26T09:00:00+00:00"
            ]
        );
    }

    #[test]
    fn count_until_and_the_series_end_stop_it() {
        let three = Recurrence::new("FREQ=DAILY;COUNT=3", "UTC", None).expect("a rule");
        assert_eq!(run(&three, "2026-01-01T10:00:00Z", 10).len(), 3);
        let until =
            Recurrence::new("FREQ=DAILY;UNTIL=20260103T100000Z", "UTC", None).expect("a rule");
        assert_eq!(run(&until, "2026-01-01T10:00:00Z", 10).len(), 3);
        let ended = Recurrence::new("FREQ=DAILY", "UTC", Some(utc("2026-01-02T12:00:00Z")))
            .expect("a rule");
        assert_eq!(run(&ended, "2026-01-01T10:00:00Z", 10).len(), 2);
    }

    #[test]
    fn missed_occurrences_are_skipped_to_the_present() {
        let hourly = Recurrence::new("FREQ=HOURLY", "UTC", None).expect("a rule");
        let last = utc("2026-01-01T10:00:00Z");
        assert_eq!(
            hourly.next(last, 1, utc("2026-01-01T14:30:00Z")),
            Some(utc("2026-01-01T15:00:00Z"))
        );
    }

    #[test]
    fn a_resumed_series_keeps_its_phase() {
        let daily = Recurrence::new("FREQ=DAILY", "UTC", None).expect("a rule");
        let start = utc("2026-01-01T09:00:00Z");
        let now = utc("2026-01-05T12:00:00Z");
        assert_eq!(
            daily.resume(start, None, 0, now),
            Some(utc("2026-01-06T09:00:00Z"))
        );
        assert_eq!(
            daily.resume(start, Some(utc("2026-01-02T09:00:00Z")), 2, now),
            Some(utc("2026-01-06T09:00:00Z"))
        );
    }

    #[test]
    fn every_few_seconds() {
        let quick =
            Recurrence::new("FREQ=SECONDLY;INTERVAL=2;COUNT=3", "UTC", None).expect("a rule");
        assert_eq!(
            run(&quick, "2026-01-01T10:00:00.250Z", 5),
            [
                "2026-01-01T10:00:00+00:00",
                "2026-01-01T10:00:02+00:00",
                "2026-01-01T10:00:04+00:00"
            ]
        );
    }

    #[test]
    fn bad_rules_say_why() {
        assert!(matches!(
            Recurrence::new("FREQ=FORTNIGHTLY", "UTC", None),
            Err(RecurrenceError::Rule(_))
        ));
        assert_eq!(
            Recurrence::new("FREQ=DAILY;COUNT=0", "UTC", None).err(),
            Some(RecurrenceError::Count)
        );
        // Found by the fuzzer: a weekday with a two-byte character in it.
        assert_eq!(
            Recurrence::new(
                "FREQ=YEARLY;BYDAY=MOY=MO,TU\u{56B}U;BYSETPOS=-5",
                "UTC",
                None
            )
            .err(),
            Some(RecurrenceError::NotAscii)
        );
        assert_eq!(
            Recurrence::new("FREQ=DAILY", "Mars/Olympus", None).err(),
            Some(RecurrenceError::Zone)
        );
        let past = Recurrence::new("FREQ=DAILY;UNTIL=20200101T000000Z", "UTC", None)
            .expect("a rule that parses");
        assert_eq!(
            past.first(utc("2026-01-01T00:00:00Z")),
            Err(RecurrenceError::NoOccurrence)
        );
    }
}
