//! What a plan's sending respects: how often one person may get marketing messages, the hours
//! in which they get none, and which batches those rules leave alone.

use chrono_tz::Tz;
use rustc_hash::FxHashSet;

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
    let digits = e164.strip_prefix('+').unwrap_or(e164).as_bytes();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0_u64, |number, &byte| {
        let digit = byte.wrapping_sub(b'0');
        (digit <= 9).then(|| number * 10 + u64::from(digit))
    })
}

/// Marketing messages recorded over a cap's period, before the batch in hand: one number per
/// message, as integers ([`number_key`]). Millions of them are counted per resolution; sorting
/// them and counting runs measured twice as fast as counting them in a hash map, whose millions
/// of entries miss the cache at every step.
#[derive(Debug, Clone, Default)]
pub struct RecentMessages(Vec<u64>);

impl RecentMessages {
    /// Room for `messages` numbers up front.
    pub fn with_capacity(messages: usize) -> Self {
        Self(Vec::with_capacity(messages))
    }

    pub fn count(&mut self, e164: &str) {
        if let Some(key) = number_key(e164) {
            self.0.push(key);
        }
    }

    /// The numbers `cap` lets have no more messages.
    pub fn capped(mut self, cap: FrequencyCap) -> CappedNumbers {
        self.0.sort_unstable();
        let mut capped = FxHashSet::default();
        for run in self.0.chunk_by(|a, b| a == b) {
            let earlier = u32::try_from(run.len()).unwrap_or(u32::MAX);
            if !cap.allows(earlier) {
                capped.insert(run[0]);
            }
        }
        CappedNumbers(capped)
    }
}

/// The numbers a frequency cap leaves out of the batch in hand (usually a small share of those
/// counted, so looking each recipient up here is cheaper than in the counts).
#[derive(Debug, Clone, Default)]
pub struct CappedNumbers(FxHashSet<u64>);

impl CappedNumbers {
    pub fn contains(&self, e164: &str) -> bool {
        !self.0.is_empty() && number_key(e164).is_some_and(|key| self.0.contains(&key))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_counts_what_came_before() {
        let cap = FrequencyCap::new(2, 7).expect("a cap");
        let capped_after = |counted: &[&str]| {
            let mut recent = RecentMessages::with_capacity(counted.len());
            counted.iter().for_each(|phone| recent.count(phone));
            recent.capped(cap)
        };
        assert!(capped_after(&[]).is_empty());
        assert!(!capped_after(&["+14155550001"]).contains("+14155550001"));
        let capped = capped_after(&["+14155550001", "+14155550002", "+14155550001"]);
        assert!(capped.contains("+14155550001"));
        assert!(!capped.contains("+14155550002"));
        assert!(!capped.contains("+1415555000x"));
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
