//! What a plan's sending respects: how often one person may get marketing messages, the hours
//! in which they get none, and which batches those rules leave alone.

use chrono_tz::Tz;
use rustc_hash::FxHashMap;

use super::quiet::QuietHours;

/// Why a batch is sent. Only marketing messages are held to a plan's frequency cap and quiet
/// hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    #[default]
    Marketing,
    /// One-time codes, receipts, alerts: sent whatever the caps and the hour.
    Transactional,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "marketing",
            Self::Transactional => "transactional",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "marketing" => Some(Self::Marketing),
            "transactional" => Some(Self::Transactional),
            _ => None,
        }
    }
}

/// At most `messages` marketing messages per person in any `days` days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    messages: u32,
    days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrequencyCapError {
    #[error("must be 1 to {0}")]
    Messages(u32),
    #[error("must be 1 to {0}")]
    Days(u32),
}

impl FrequencyCap {
    pub const MAX_MESSAGES: u32 = 1000;
    pub const MAX_DAYS: u32 = 366;

    pub fn new(messages: u32, days: u32) -> Result<Self, FrequencyCapError> {
        if !(1..=Self::MAX_MESSAGES).contains(&messages) {
            return Err(FrequencyCapError::Messages(Self::MAX_MESSAGES));
        }
        if !(1..=Self::MAX_DAYS).contains(&days) {
            return Err(FrequencyCapError::Days(Self::MAX_DAYS));
        }
        Ok(Self { messages, days })
    }

    pub fn messages(self) -> u32 {
        self.messages
    }

    pub fn days(self) -> u32 {
        self.days
    }

    /// The rolling period, in milliseconds.
    pub fn period_millis(self) -> i64 {
        i64::from(self.days) * 86_400_000
    }

    /// Whether one more message fits after `earlier` messages in the period.
    pub fn allows(self, earlier: u32) -> bool {
        earlier < self.messages
    }
}

/// A plan's quiet hours: the window, and the zone of numbers whose own zone is unknown (none:
/// such numbers are never held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHoursSetting {
    pub window: QuietHours,
    pub fallback_zone: Option<Tz>,
}

/// A plan's sending rules; each off unless set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendingSettings {
    pub frequency_cap: Option<FrequencyCap>,
    pub quiet_hours: Option<QuietHoursSetting>,
}

impl SendingSettings {
    /// The quiet hours that hold a batch of `purpose`.
    pub fn quiet_hours_for(&self, purpose: Purpose) -> Option<QuietHoursSetting> {
        self.quiet_hours.filter(|_| purpose == Purpose::Marketing)
    }
}

/// An E.164 number as an integer (its digits fit in 64 bits and never start with 0), so that
/// counting a million numbers does not hold a million strings.
pub fn number_key(e164: &str) -> Option<u64> {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Marketing messages recorded per number over a cap's period, before the batch in hand. Keyed
/// by [`number_key`] with a fast non-cryptographic hash: millions of numbers are counted per
/// resolution, and the keys are not chosen by an adversary who could collide them to any end
/// but slowing their own plan's resolution.
#[derive(Debug, Clone, Default)]
pub struct RecentMessages(FxHashMap<u64, u32>);

impl RecentMessages {
    pub fn count(&mut self, e164: &str) {
        if let Some(key) = number_key(e164) {
            *self.0.entry(key).or_insert(0) += 1;
        }
    }

    /// Whether `cap` lets one more message go to `e164`.
    pub fn allows(&self, cap: FrequencyCap, e164: &str) -> bool {
        let earlier = number_key(e164)
            .and_then(|key| self.0.get(&key).copied())
            .unwrap_or(0);
        cap.allows(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_counts_what_came_before() {
        let cap = FrequencyCap::new(2, 7).expect("a cap");
        let mut recent = RecentMessages::default();
        assert!(recent.allows(cap, "+14155550001"));
        recent.count("+14155550001");
        assert!(recent.allows(cap, "+14155550001"));
        recent.count("+14155550001");
        assert!(!recent.allows(cap, "+14155550001"));
        assert!(recent.allows(cap, "+14155550002"));
        assert_eq!(cap.period_millis(), 7 * 86_400_000);
    }

    #[test]
    fn caps_are_bounded() {
        assert_eq!(
            FrequencyCap::new(0, 7),
            Err(FrequencyCapError::Messages(1000))
        );
        assert_eq!(FrequencyCap::new(3, 0), Err(FrequencyCapError::Days(366)));
        assert!(FrequencyCap::new(1000, 366).is_ok());
    }

    #[test]
    fn numbers_become_integers() {
        assert_eq!(number_key("+14155550001"), Some(14_155_550_001));
        assert_eq!(number_key("+999999999999999"), Some(999_999_999_999_999));
        assert_eq!(number_key("+"), None);
        assert_eq!(number_key("+1415x"), None);
        assert_eq!(number_key("+1234567890123456"), None);
    }
}
