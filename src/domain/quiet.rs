//! Quiet hours: a daily window, in each recipient's local time, during which marketing messages
//! wait. A recipient's time zones come from their contact's `time_zone` or from their number
//! (libphonenumber's prefix-to-zone map, through `namba`); a number whose prefix spans several
//! zones is quiet whenever any of them is.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;

const DAY_SECONDS: u32 = 86_400;

/// A window of local time, `start` (inclusive) to `end` (exclusive), in seconds after midnight;
/// past midnight when `end` comes before `start` (21:00 to 08:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietHoursError {
    #[error("must be a time of day as HH:MM or HH:MM:SS, such as \"21:00\"")]
    Time,
    #[error("the window must not start when it ends")]
    Empty,
}

impl QuietHours {
    pub fn new(start: u32, end: u32) -> Result<Self, QuietHoursError> {
        if start >= DAY_SECONDS || end >= DAY_SECONDS {
            return Err(QuietHoursError::Time);
        }
        if start == end {
            return Err(QuietHoursError::Empty);
        }
        Ok(Self { start, end })
    }

    /// Seconds after midnight of `HH:MM` or `HH:MM:SS`.
    pub fn parse_time(input: &str) -> Result<u32, QuietHoursError> {
        let time = NaiveTime::parse_from_str(input, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(input, "%H:%M"))
            .map_err(|_| QuietHoursError::Time)?;
        Ok(time.num_seconds_from_midnight())
    }

    /// `HH:MM`, or `HH:MM:SS` when the seconds are not zero.
    pub fn format_time(seconds: u32) -> String {
        let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        if seconds == 0 {
            format!("{hours:02}:{minutes:02}")
        } else {
            format!("{hours:02}:{minutes:02}:{seconds:02}")
        }
    }

    pub fn start(self) -> u32 {
        self.start
    }

    pub fn end(self) -> u32 {
        self.end
    }

    fn contains(self, seconds: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&seconds)
        } else {
            seconds >= self.start || seconds < self.end
        }
    }

    /// Whether `at` falls in the window in `zone`.
    pub fn is_quiet(self, at: DateTime<Utc>, zone: Tz) -> bool {
        self.contains(at.with_timezone(&zone).num_seconds_from_midnight())
    }

    /// When the window that holds `at` ends in `zone`: the first moment its clocks read
    /// `end` (or later, when a clock change skips that reading).
    fn window_end(self, at: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        let local = at.with_timezone(&zone).naive_local();
        let end = NaiveTime::from_num_seconds_from_midnight_opt(self.end, 0).unwrap_or_default();
        let mut candidate = NaiveDateTime::new(local.date(), end);
        if candidate <= local {
            candidate += Duration::days(1);
        }
        first_moment_after(zone, candidate, at)
    }

    /// When a message due at `at` to someone in `zones` may be sent, if it must wait: the
    /// first moment after `at` outside the window in every zone. Where the zones' windows
    /// leave no such moment, the end of the window reached after a few steps.
    pub fn release(self, at: DateTime<Utc>, zones: &[Tz]) -> Option<DateTime<Utc>> {
        let quiet_until = |at: DateTime<Utc>| {
            zones
                .iter()
                .filter(|zone| self.is_quiet(at, **zone))
                .map(|zone| self.window_end(at, *zone))
                .max()
        };
        let mut release = quiet_until(at)?;
        for _ in 0..zones.len().min(8) {
            match quiet_until(release) {
                Some(later) => release = later,
                None => break,
            }
        }
        Some(release)
    }
}

/// The first moment after `after` at which `zone`'s clocks read `local`: of a reading the
/// clocks show twice (going back), the first instance still to come; of a reading they skip
/// (going forward), the end of the gap.
fn first_moment_after(zone: Tz, local: NaiveDateTime, after: DateTime<Utc>) -> DateTime<Utc> {
    let mut reading = local;
    // Gaps are an hour or less nearly everywhere; two days of minutes bounds the odd ones.
    for _ in 0..2 * 24 * 60 {
        match zone.from_local_datetime(&reading) {
            LocalResult::Single(moment) => return moment.with_timezone(&Utc),
            LocalResult::Ambiguous(earlier, later) => {
                let earlier = earlier.with_timezone(&Utc);
                return if earlier > after {
                    earlier
                } else {
                    later.with_timezone(&Utc)
                };
            }
            LocalResult::None => {
                reading = (reading + Duration::minutes(1))
                    .with_second(0)
                    .unwrap_or(reading + Duration::minutes(1));
            }
        }
    }
    Utc.from_utc_datetime(&local)
}

/// One recipient's time zones, as stored beside a chunk: IANA names joined by `&`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZoneSet(String);

impl ZoneSet {
    pub fn single(zone: Tz) -> Self {
        ZoneSet(zone.name().to_owned())
    }

    pub fn from_stored(stored: &str) -> Self {
        ZoneSet(stored.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zones this build knows (an unknown name is left out).
    pub fn zones(&self) -> Vec<Tz> {
        self.0
            .split('&')
            .filter_map(|name| name.parse::<Tz>().ok())
            .collect()
    }
}

/// The time zones of an E.164 number, by libphonenumber's map; `None` when the map has none.
pub fn zones_of_number(e164: &str) -> Option<ZoneSet> {
    let number = namba::parse(e164).ok()?;
    let zones = namba::TimeZones::for_number(&number)?;
    let joined = zones.iter().collect::<Vec<_>>().join("&");
    (!joined.is_empty() && joined != "Etc/Unknown").then_some(ZoneSet(joined))
}

/// The digits of a number that libphonenumber's zone map can tell apart: its longest prefix is
/// nine digits long, so numbers that share their first nine share their zones.
const ZONE_PREFIX_DIGITS: usize = 9;

/// Finds recipients' zone sets, remembering each prefix's answer (parsing a number costs far
/// more than a map lookup) and handing out one small index per distinct set.
#[derive(Debug, Default)]
pub struct ZoneFinder {
    by_prefix: FxHashMap<(u64, u8), Option<usize>>,
    sets: Vec<ZoneSet>,
    fallback: Option<usize>,
}

impl ZoneFinder {
    /// A finder that answers `fallback` for numbers the map does not know.
    pub fn new(fallback: Option<Tz>) -> Self {
        let mut finder = Self::default();
        finder.fallback = fallback.map(|zone| finder.intern(ZoneSet::single(zone)));
        finder
    }

    fn intern(&mut self, set: ZoneSet) -> usize {
        match self.sets.iter().position(|known| *known == set) {
            Some(index) => index,
            None => {
                self.sets.push(set);
                self.sets.len() - 1
            }
        }
    }

    /// The index of a contact's own zone.
    pub fn for_zone(&mut self, zone: Tz) -> usize {
        self.intern(ZoneSet::single(zone))
    }

    /// The index of a number's zone set, if it has one.
    pub fn for_number(&mut self, e164: &str) -> Option<usize> {
        let digits = e164.strip_prefix('+').unwrap_or(e164);
        let prefix = digits.get(..ZONE_PREFIX_DIGITS).unwrap_or(digits);
        let key = prefix
            .parse::<u64>()
            .ok()
            .map(|value| (value, prefix.len() as u8));
        if let Some(key) = key
            && let Some(found) = self.by_prefix.get(&key)
        {
            return found.or(self.fallback);
        }
        let found = zones_of_number(e164).map(|set| self.intern(set));
        if let Some(key) = key {
            self.by_prefix.insert(key, found);
        }
        found.or(self.fallback)
    }

    pub fn set(&self, index: usize) -> &ZoneSet {
        &self.sets[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    fn night() -> QuietHours {
        QuietHours::new(21 * 3600, 8 * 3600).expect("a window")
    }

    #[test]
    fn times_of_day_read_and_print() {
        assert_eq!(QuietHours::parse_time("21:00"), Ok(75_600));
        assert_eq!(QuietHours::parse_time("07:30:15"), Ok(27_015));
        assert_eq!(QuietHours::parse_time("24:00"), Err(QuietHoursError::Time));
        assert_eq!(QuietHours::parse_time("9pm"), Err(QuietHoursError::Time));
        assert_eq!(QuietHours::format_time(75_600), "21:00");
        assert_eq!(QuietHours::format_time(27_015), "07:30:15");
        assert_eq!(QuietHours::new(3600, 3600), Err(QuietHoursError::Empty));
    }

    #[test]
    fn a_night_window_wraps_midnight() {
        let new_york: Tz = "America/New_York".parse().expect("a zone");
        // 02:00 UTC is 22:00 in New York (summer): quiet until 08:00 there, 12:00 UTC.
        let at = utc("2026-07-01T02:00:00Z");
        assert!(night().is_quiet(at, new_york));
        assert_eq!(
            night().release(at, &[new_york]),
            Some(utc("2026-07-01T12:00:00Z"))
        );
        // 16:00 UTC is noon there: not held.
        assert_eq!(
            night().release(utc("2026-07-01T16:00:00Z"), &[new_york]),
            None
        );
    }

    #[test]
    fn clocks_going_back_hold_until_the_new_morning() {
        let new_york: Tz = "America/New_York".parse().expect("a zone");
        // 2026-11-01 05:30 UTC is 01:30 EDT, before the clocks go back at 02:00 EDT: the window
        // ends at 08:00 EST, which is 13:00 UTC.
        let at = utc("2026-11-01T05:30:00Z");
        assert_eq!(
            night().release(at, &[new_york]),
            Some(utc("2026-11-01T13:00:00Z"))
        );
    }

    #[test]
    fn a_window_ending_in_a_skipped_hour_ends_when_the_clocks_jump() {
        let new_york: Tz = "America/New_York".parse().expect("a zone");
        // On 2026-03-08 New York's clocks go from 02:00 to 03:00; a window ending at 02:30
        // ends at 03:00 EDT, 07:00 UTC.
        let window = QuietHours::new(22 * 3600, 2 * 3600 + 1800).expect("a window");
        let at = utc("2026-03-08T05:00:00Z");
        assert_eq!(
            window.release(at, &[new_york]),
            Some(utc("2026-03-08T07:00:00Z"))
        );
    }

    #[test]
    fn several_zones_hold_until_the_last_window_ends() {
        let london: Tz = "Europe/London".parse().expect("a zone");
        let los_angeles: Tz = "America/Los_Angeles".parse().expect("a zone");
        // 07:30 UTC in winter: 07:30 in London (quiet until 08:00), 23:30 in Los Angeles
        // (quiet until 08:00 there, 16:00 UTC).
        let at = utc("2026-01-15T07:30:00Z");
        assert_eq!(
            night().release(at, &[london, los_angeles]),
            Some(utc("2026-01-15T16:00:00Z"))
        );
        // 15:00 UTC: London 15:00 (fine), Los Angeles 07:00 (quiet): still held.
        assert!(
            night()
                .release(utc("2026-01-15T15:00:00Z"), &[london])
                .is_none()
        );
        assert_eq!(
            night().release(utc("2026-01-15T15:00:00Z"), &[london, los_angeles]),
            Some(utc("2026-01-15T16:00:00Z"))
        );
    }

    #[test]
    fn a_number_across_two_zones_waits_for_both_across_a_clock_change() {
        // Nevada's 775 spans Mountain (Boise) and Pacific (Los Angeles) time.
        let mut finder = ZoneFinder::new(None);
        let nevada = finder.for_number("+17755550100").expect("zones");
        let zones = finder.set(nevada).zones();
        assert_eq!(
            finder.set(nevada).as_str(),
            "America/Boise&America/Los_Angeles"
        );
        // Summer, 14:30 UTC: 08:30 in Boise (free), 07:30 in Los Angeles (quiet) until 08:00
        // there, 15:00 UTC.
        assert_eq!(
            night().release(utc("2026-07-01T14:30:00Z"), &zones),
            Some(utc("2026-07-01T15:00:00Z"))
        );
        // 03:30 UTC: 21:30 in Boise (quiet), 20:30 in Los Angeles (free). Boise's night ends at
        // 14:00 UTC, when Los Angeles is at 07:00 and quiet: held until 15:00 UTC.
        assert_eq!(
            night().release(utc("2026-07-01T03:30:00Z"), &zones),
            Some(utc("2026-07-01T15:00:00Z"))
        );
        // The night the clocks go back (2026-11-01): 04:00 UTC is 22:00 MDT and 21:00 PDT;
        // mornings come at 08:00 MST (15:00 UTC) and 08:00 PST (16:00 UTC).
        assert_eq!(
            night().release(utc("2026-11-01T04:00:00Z"), &zones),
            Some(utc("2026-11-01T16:00:00Z"))
        );
    }

    #[test]
    fn numbers_find_their_zones() {
        let mut finder = ZoneFinder::new(None);
        let san_francisco = finder.for_number("+14155550001").expect("a zone");
        assert_eq!(finder.set(san_francisco).as_str(), "America/Los_Angeles");
        let british = finder.for_number("+447700900123").expect("zones");
        assert_eq!(finder.set(british).zones().len(), 3);
        // The same nine-digit prefix answers from memory, with the same index.
        assert_eq!(finder.for_number("+14155550002"), Some(san_francisco));
        assert_eq!(finder.for_number("+999123456"), None);
        let utc_zone: Tz = "UTC".parse().expect("a zone");
        let mut with_fallback = ZoneFinder::new(Some(utc_zone));
        let fallback = with_fallback
            .for_number("+999123456")
            .expect("the fallback");
        assert_eq!(with_fallback.set(fallback).as_str(), "UTC");
    }

    const ZONES: &[&str] = &[
        "UTC",
        "America/New_York",
        "America/Los_Angeles",
        "America/St_Johns",
        "Europe/London",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Australia/Adelaide",
        "Pacific/Chatham",
        "Pacific/Apia",
        "America/Santiago",
    ];

    fn zone() -> impl Strategy<Value = Tz> {
        proptest::sample::select(ZONES).prop_map(|name| name.parse::<Tz>().expect("a zone"))
    }

    fn moment() -> impl Strategy<Value = DateTime<Utc>> {
        // 2024 to 2030, to the second.
        (1_704_067_200_i64..1_893_456_000)
            .prop_map(|seconds| DateTime::from_timestamp(seconds, 0).expect("a moment in range"))
    }

    proptest! {
        /// In one zone, a held message is released at the first moment outside the window.
        #[test]
        fn release_is_the_end_of_the_window(
            start in 0u32..DAY_SECONDS,
            length in 1u32..DAY_SECONDS,
            zone in zone(),
            at in moment(),
        ) {
            let window = QuietHours::new(start, (start + length) % DAY_SECONDS).expect("a window");
            match window.release(at, &[zone]) {
                None => prop_assert!(!window.is_quiet(at, zone)),
                Some(release) => {
                    prop_assert!(window.is_quiet(at, zone));
                    prop_assert!(release > at);
                    prop_assert!(!window.is_quiet(release, zone));
                    prop_assert!(window.is_quiet(release - Duration::seconds(1), zone));
                    // Never held past a day and the longest clock change.
                    prop_assert!(release - at <= Duration::hours(26));
                }
            }
        }

        /// With two zones and windows short enough to leave a gap, the release is outside the
        /// window in both, and the moment before it is quiet in one of them.
        #[test]
        fn release_is_free_in_every_zone(
            start in 0u32..DAY_SECONDS,
            length in 1u32..(10 * 3600),
            first in zone(),
            second in zone(),
            at in moment(),
        ) {
            let window = QuietHours::new(start, (start + length) % DAY_SECONDS).expect("a window");
            let zones = [first, second];
            let quiet = |moment| zones.iter().any(|zone| window.is_quiet(moment, *zone));
            match window.release(at, &zones) {
                None => prop_assert!(!quiet(at)),
                Some(release) => {
                    prop_assert!(release > at);
                    prop_assert!(!quiet(release));
                    prop_assert!(quiet(release - Duration::seconds(1)));
                }
            }
        }
    }
}
