//! A recurring batch's rule, time zone and quiet-hours times as a client sends them, on
//! arbitrary input: reading never panics, and every occurrence worked out comes after the one
//! before and never before the start.

#![no_main]

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use roster::domain::quiet::QuietHours;
use roster::domain::recurrence::Recurrence;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the rule, the second the zone, the third a time of day.
    let mut lines = text.lines();
    let rule = lines.next().unwrap_or("");
    let zone = lines.next().unwrap_or("UTC");
    if let Some(time) = lines.next() {
        let _ = QuietHours::parse_time(time);
    }
    let Ok(recurrence) = Recurrence::new(rule, zone, None) else {
        return;
    };
    let Some(start) = DateTime::<Utc>::from_timestamp(1_800_000_000, 0) else {
        return;
    };
    let Ok(mut at) = recurrence.first(start) else {
        return;
    };
    assert!(at >= start);
    for made in 1..5 {
        match recurrence.next(at, made, at) {
            Some(next) => {
                assert!(next > at, "{rule}: {next} after {at}");
                at = next;
            }
            None => break,
        }
    }
    let _ = recurrence.resume(start, Some(at), 5, at + Duration::days(3));
});
