//! Phone numbers (MSISDNs) in E.164, validated with Google's libphonenumber metadata.

use std::fmt;

use rlibphonenumber::{
    PHONE_NUMBER_UTIL, ParseError, PhoneNumber, PhoneNumberFormat, PhoneNumberType, Region,
    ValidationError,
};

/// A valid phone number in E.164 form (`+` and up to 15 digits). Only [`Msisdn::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Msisdn(String);

/// What libphonenumber knows about a valid number: kept with the contact because an SMS to a
/// fixed line fails. Ordered by the number alone, since type and country follow from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNumber {
    pub msisdn: Msisdn,
    pub number_type: NumberType,
    /// ISO 3166-1 alpha-2 region, absent for non-geographic numbers (e.g. `+800`).
    pub country: Option<String>,
}

impl Ord for ParsedNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.msisdn.cmp(&other.msisdn)
    }
}

impl PartialOrd for ParsedNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The kind of line a number belongs to, as libphonenumber classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberType {
    Mobile,
    FixedLine,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl NumberType {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberType::Mobile => "mobile",
            NumberType::FixedLine => "fixed_line",
            NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberType::TollFree => "toll_free",
            NumberType::PremiumRate => "premium_rate",
            NumberType::SharedCost => "shared_cost",
            NumberType::Voip => "voip",
            NumberType::PersonalNumber => "personal_number",
            NumberType::Pager => "pager",
            NumberType::Uan => "uan",
            NumberType::Voicemail => "voicemail",
            NumberType::Unknown => "unknown",
        }
    }

    /// Every type, in the order of their stored codes.
    pub const ALL: [NumberType; 12] = [
        NumberType::Mobile,
        NumberType::FixedLineOrMobile,
        NumberType::FixedLine,
        NumberType::TollFree,
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::Voip,
        NumberType::PersonalNumber,
        NumberType::Pager,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Unknown,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The small integer a contact's type is stored as (migration 26): a byte where the name
    /// took up to 20 in the row. The two SMS-capable types, which nearly every number has, are
    /// 0 and 1, which SQLite stores in no bytes at all.
    pub fn code(self) -> i16 {
        match self {
            NumberType::Mobile => 0,
            NumberType::FixedLineOrMobile => 1,
            NumberType::FixedLine => 2,
            NumberType::TollFree => 3,
            NumberType::PremiumRate => 4,
            NumberType::SharedCost => 5,
            NumberType::Voip => 6,
            NumberType::PersonalNumber => 7,
            NumberType::Pager => 8,
            NumberType::Uan => 9,
            NumberType::Voicemail => 10,
            NumberType::Unknown => 11,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The types whose numbers can take an SMS (`channel=sms`).
    pub const SMS_CAPABLE: [NumberType; 2] = [NumberType::Mobile, NumberType::FixedLineOrMobile];

    /// Whether a stored type name is one of [`NumberType::SMS_CAPABLE`].
    pub fn sms_capable(name: &str) -> bool {
        Self::SMS_CAPABLE.iter().any(|kind| kind.as_str() == name)
    }

    fn from_library(kind: PhoneNumberType) -> Self {
        match kind {
            PhoneNumberType::Mobile => NumberType::Mobile,
            PhoneNumberType::FixedLine => NumberType::FixedLine,
            PhoneNumberType::FixedLineOrMobile => NumberType::FixedLineOrMobile,
            PhoneNumberType::TollFree => NumberType::TollFree,
            PhoneNumberType::PremiumRate => NumberType::PremiumRate,
            PhoneNumberType::SharedCost => NumberType::SharedCost,
            PhoneNumberType::VoIP => NumberType::Voip,
            PhoneNumberType::PersonalNumber => NumberType::PersonalNumber,
            PhoneNumberType::Pager => NumberType::Pager,
            PhoneNumberType::UAN => NumberType::Uan,
            PhoneNumberType::VoiceMail => NumberType::Voicemail,
            PhoneNumberType::Unknown => NumberType::Unknown,
        }
    }
}

/// Why a string is not a usable phone number; the text is shown to API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    #[error("is empty")]
    Empty,
    #[error("is not a phone number")]
    NotANumber,
    #[error("is a national number; give it in E.164 (+country code) or set default_region")]
    NeedsRegion,
    #[error("has an unknown country calling code")]
    UnknownCountryCode,
    #[error("is too short")]
    TooShort,
    #[error("is too long")]
    TooLong,
    #[error("is not a valid number in its numbering plan")]
    Invalid,
}

/// A region for national-format numbers (ISO 3166-1 alpha-2, e.g. `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionCode(Region);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a known region code (ISO 3166-1 alpha-2 such as US or DE)")]
pub struct RegionCodeError;

impl RegionCode {
    /// Every region with numbering metadata, by code.
    pub fn all() -> Vec<RegionCode> {
        let mut regions: Vec<RegionCode> = PHONE_NUMBER_UTIL
            .get_supported_regions()
            .map(RegionCode)
            .collect();
        regions.sort_by_key(RegionCode::as_str);
        regions
    }

    /// The country's name in English (ISO 3166's short name), or the code where ISO has none
    /// (`XK`, Kosovo, is user-assigned).
    pub fn name(&self) -> String {
        let code = self.as_str();
        isocountry::CountryCode::for_alpha2(&code)
            .map(|country| country.name().to_owned())
            .unwrap_or(code)
    }

    pub fn parse(input: &str) -> Result<Self, RegionCodeError> {
        let upper = input.trim().to_ascii_uppercase();
        // Any two letters make a `Region`; only those with numbering metadata are real ones.
        Region::from_code(&upper)
            .ok()
            .filter(|region| {
                PHONE_NUMBER_UTIL
                    .get_country_code_for_region(*region)
                    .is_some()
            })
            .map(RegionCode)
            .ok_or(RegionCodeError)
    }

    pub fn as_str(&self) -> String {
        self.0.to_string()
    }
}

/// The E.164 prefix that the start of a number typed in a search box stands for: `+44 7700` as
/// it is, `0044 7700` without its international `00`, and a national `07700` or `(415)` in
/// `region`'s country code without the trunk prefix (`+447700`, `+1415`). `None` for text that
/// is not digits and the usual separators (a name, then).
pub fn search_prefix(typed: &str, region: Option<RegionCode>) -> Option<String> {
    let typed = typed.trim();
    let international = typed.starts_with('+');
    let mut digits = String::new();
    for c in typed.chars().skip(usize::from(international)) {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    if digits.is_empty() {
        return None;
    }
    if international {
        return Some(format!("+{digits}"));
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return Some(format!("+{rest}"));
    }
    let Some(RegionCode(region)) = region else {
        return Some(format!("+{digits}"));
    };
    let code = PHONE_NUMBER_UTIL.get_country_code_for_region(region)?;
    let trunk = trunk_prefix(region);
    let national = match trunk.as_str() {
        "" => digits.as_str(),
        trunk => digits.strip_prefix(trunk).unwrap_or(&digits),
    };
    Some(format!("+{code}{national}"))
}

/// How a sample of numbers reads in a region: how many of them are not valid there, and the
/// regions where more of them would be, best first (at most three: national numbers often fit
/// several countries, `07911 123456` Britain's and India's alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionCheck {
    pub sampled: usize,
    pub invalid: usize,
    pub better: Vec<RegionCode>,
}

/// Checks a sample of numbers (an import's first rows) against `region` and, when most are not
/// valid there, finds the regions where the most would be (on a tie, those where more are
/// certainly mobiles, then the main region of a country code: GB before Jersey), so that a wrong
/// default region is caught before the import.
pub fn check_region(samples: &[&str], region: Option<RegionCode>) -> RegionCheck {
    // Valid numbers, then those of them that are certainly mobiles: a sample of mobiles read as
    // another country's landlines (or "landline or mobile") is the lesser fit.
    let fit = |region: Option<RegionCode>| {
        samples
            .iter()
            .filter_map(|sample| Msisdn::parse(sample, region).ok())
            .fold((0, 0), |(valid, mobile), parsed| {
                let certain = parsed.number_type == NumberType::Mobile;
                (valid + 1, mobile + usize::from(certain))
            })
    };
    let (valid, _) = fit(region);
    let invalid = samples.len() - valid;
    let mut better = Vec::new();
    if invalid * 2 > samples.len() {
        let mut candidates: Vec<_> = PHONE_NUMBER_UTIL
            .get_supported_regions()
            .map(|candidate| {
                let main = PHONE_NUMBER_UTIL
                    .get_country_code_for_region(candidate)
                    .and_then(|code| PHONE_NUMBER_UTIL.get_region_for_country_code(code))
                    == Some(candidate);
                let (valid, mobile) = fit(Some(RegionCode(candidate)));
                ((valid, mobile, main), candidate.to_string(), candidate)
            })
            .filter(|((count, _, _), _, _)| *count > valid)
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        better = candidates
            .into_iter()
            .take(3)
            .map(|(_, _, candidate)| RegionCode(candidate))
            .collect();
    }
    RegionCheck {
        sampled: samples.len(),
        invalid,
        better,
    }
}

/// The digits dialled before a national number within `region` (`0` in most of Europe, `1` in
/// North America, none in Italy, where the `0` belongs to the number). The library keeps the
/// prefix to itself, so it is read off the region's example number: what its national format
/// holds before the national significant number.
fn trunk_prefix(region: Region) -> String {
    if PHONE_NUMBER_UTIL.is_nanpa_country(region) {
        return "1".to_owned();
    }
    let Ok(example) = PHONE_NUMBER_UTIL.get_example_number(region) else {
        return String::new();
    };
    let national: String = example
        .format_as(PhoneNumberFormat::National)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = example.get_national_significant_number();
    national
        .strip_suffix(significant.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Longest input worth handing to the parser; anything longer is not a phone number.
const MAX_INPUT_LEN: usize = 64;

/// E.164's limit: country code and national number together.
const MAX_E164_DIGITS: usize = 15;

impl Msisdn {
    /// Parses E.164 or, with a region, national format. Digits without a `+` and without a
    /// region are read as E.164 missing its `+`, which is how many systems store numbers.
    pub fn parse(input: &str, region: Option<RegionCode>) -> Result<ParsedNumber, MsisdnError> {
        let trimmed = input.trim();
        // Most numbers arrive international already: the fast path decides those exactly as
        // the library would, and hands anything else to it. The input bounds come first, as
        // they do on the library's path.
        if !trimmed.is_empty() && trimmed.len() <= MAX_INPUT_LEN {
            let fast = if trimmed.starts_with('+') {
                super::fast_e164::parse(trimmed)
            } else if region.is_none() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
                super::fast_e164::parse(&format!("+{trimmed}"))
            } else {
                None
            };
            if let Some(parsed) = fast {
                return Ok(parsed);
            }
        }
        Self::parse_with_library(input, region)
    }

    /// The same verdicts as [`Msisdn::parse`], from rlibphonenumber's general parser alone.
    pub fn parse_with_library(
        input: &str,
        region: Option<RegionCode>,
    ) -> Result<ParsedNumber, MsisdnError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MsisdnError::Empty);
        }
        if trimmed.len() > MAX_INPUT_LEN {
            return Err(MsisdnError::TooLong);
        }
        let looks_international =
            trimmed.starts_with('+') || trimmed.chars().all(|c| c.is_ascii_digit());
        let number = match region {
            Some(RegionCode(region)) => PhoneNumber::parse(trimmed, Some(region)),
            None if trimmed.starts_with('+') => PhoneNumber::parse(trimmed, None),
            None if looks_international => PhoneNumber::parse(format!("+{trimmed}"), None),
            None => PhoneNumber::parse(trimmed, None),
        }
        .map_err(|error| match error {
            ParseError::InvalidCountryCode if region.is_none() && !looks_international => {
                MsisdnError::NeedsRegion
            }
            ParseError::InvalidCountryCode => MsisdnError::UnknownCountryCode,
            ParseError::NotANumber(_) => MsisdnError::NotANumber,
            ParseError::TooShortAfterIdd | ParseError::TooShortNsn => MsisdnError::TooShort,
            ParseError::TooLongNsn => MsisdnError::TooLong,
        })?;
        if !number.is_valid() {
            return Err(match number.is_possible_with_reason() {
                Err(ValidationError::TooShort) => MsisdnError::TooShort,
                Err(ValidationError::TooLong) => MsisdnError::TooLong,
                Err(ValidationError::InvalidCountryCode) => MsisdnError::UnknownCountryCode,
                Err(ValidationError::InvalidLength) | Ok(_) => MsisdnError::Invalid,
            });
        }
        let e164 = number.format_as(PhoneNumberFormat::E164).into_owned();
        // libphonenumber accepts some national numbers (German ones, for instance) so long that
        // with their country code they pass E.164's 15 digits; no SMS route takes those.
        if e164.len() - 1 > MAX_E164_DIGITS {
            return Err(MsisdnError::TooLong);
        }
        let number_type = NumberType::from_library(number.get_type());
        let country = number
            .get_region_code()
            .map(|region| region.to_string())
            .filter(|code| code != "001");
        Ok(ParsedNumber {
            msisdn: Msisdn(e164),
            number_type,
            country,
        })
    }

    /// For numbers read back from our own database, which only ever holds valid ones.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_type_codes_round_trip_and_match_the_migrations() {
        for (index, kind) in NumberType::ALL.into_iter().enumerate() {
            assert_eq!(usize::try_from(kind.code()), Ok(index));
            assert_eq!(NumberType::from_code(kind.code()), Some(kind));
            assert_eq!(NumberType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(NumberType::from_code(12), None);
        for migration in [
            include_str!("../../migrations/sqlite/0026_number_type_codes.sql"),
            include_str!("../../migrations/postgres/0026_number_type_codes.sql"),
        ] {
            for kind in NumberType::ALL {
                let arm = format!("WHEN '{}' THEN {}\n", kind.as_str(), kind.code());
                assert!(migration.contains(&arm), "{arm:?}");
            }
        }
        let sms: Vec<i16> = NumberType::SMS_CAPABLE.iter().map(|k| k.code()).collect();
        assert_eq!(
            sms,
            [0, 1],
            "the partial index's condition is NOT IN (0, 1)"
        );
    }

    fn e164(input: &str, region: Option<&str>) -> Result<String, MsisdnError> {
        let region = region.map(|r| RegionCode::parse(r).expect("test region"));
        Msisdn::parse(input, region).map(|parsed| parsed.msisdn.into_string())
    }

    #[test]
    fn a_wrong_region_is_caught_from_a_sample() {
        let region = |code: &str| Some(RegionCode::parse(code).expect("test region"));
        let uk = ["07911 123456", "07400 123456", "020 7123 4567"];
        let check = check_region(&uk, region("US"));
        assert_eq!((check.sampled, check.invalid), (3, 3));
        let better: Vec<String> = check.better.iter().map(RegionCode::as_str).collect();
        assert!(better.contains(&"GB".to_owned()), "{better:?}");
        assert!(!better.contains(&"JE".to_owned()), "{better:?}");
        let fine = check_region(&uk, region("GB"));
        assert_eq!((fine.invalid, fine.better), (0, vec![]));
        // International numbers need no region; a few bad ones are no reason to suggest one.
        let mixed = check_region(&["+14155550100", "+14155550101", "nope"], region("US"));
        assert_eq!((mixed.invalid, mixed.better), (1, vec![]));
    }

    #[test]
    fn typed_number_starts_become_e164_prefixes() {
        let region = |code: &str| Some(RegionCode::parse(code).expect("test region"));
        assert_eq!(search_prefix("+44 7700", None).as_deref(), Some("+447700"));
        assert_eq!(
            search_prefix("0044 7700", region("US")).as_deref(),
            Some("+447700")
        );
        assert_eq!(
            search_prefix("07700 900", region("GB")).as_deref(),
            Some("+447700900")
        );
        assert_eq!(
            search_prefix("(415) 555-", region("US")).as_deref(),
            Some("+1415555")
        );
        assert_eq!(
            search_prefix("1 415", region("US")).as_deref(),
            Some("+1415")
        );
        assert_eq!(search_prefix("415", None).as_deref(), Some("+415"));
        assert_eq!(
            search_prefix("06 6988", region("IT")).as_deref(),
            Some("+39066988")
        );
        assert_eq!(
            search_prefix("030 1234", region("DE")).as_deref(),
            Some("+49301234")
        );
        assert_eq!(search_prefix("Smith", region("US")), None);
        assert_eq!(search_prefix("415x", region("US")), None);
        assert_eq!(search_prefix(" - ", region("US")), None);
    }

    #[test]
    fn canonical_e164_is_kept() {
        assert_eq!(e164("+14155552671", None).as_deref(), Ok("+14155552671"));
        assert_eq!(e164("+250788382382", None).as_deref(), Ok("+250788382382"));
    }

    #[test]
    fn formatting_characters_are_ignored() {
        assert_eq!(
            e164("+1 (415) 555-2671", None).as_deref(),
            Ok("+14155552671")
        );
        assert_eq!(e164(" 14155552671 ", None).as_deref(), Ok("+14155552671"));
    }

    #[test]
    fn national_numbers_need_a_region() {
        assert_eq!(e164("0788 382 382", None), Err(MsisdnError::NeedsRegion));
        assert_eq!(
            e164("0788 382 382", Some("RW")).as_deref(),
            Ok("+250788382382")
        );
    }

    #[test]
    fn invalid_numbers_say_why() {
        assert_eq!(e164("", None), Err(MsisdnError::Empty));
        assert_eq!(e164("hello", None), Err(MsisdnError::NotANumber));
        assert_eq!(e164("+1555", None), Err(MsisdnError::TooShort));
        assert_eq!(e164("+19999999999", None), Err(MsisdnError::Invalid));
        assert_eq!(e164(&"9".repeat(100), None), Err(MsisdnError::TooLong));
        // Found by fuzzing: valid to libphonenumber, but 16 digits with the country code.
        assert_eq!(
            e164("50411091234566", Some("DE")),
            Err(MsisdnError::TooLong)
        );
    }

    #[test]
    fn number_type_and_country_are_derived() {
        let parsed = Msisdn::parse("+447400123456", None).expect("valid UK mobile");
        assert_eq!(parsed.number_type, NumberType::Mobile);
        assert_eq!(parsed.country.as_deref(), Some("GB"));
    }

    #[test]
    fn region_codes_are_case_insensitive_and_checked() {
        assert!(RegionCode::parse("de").is_ok());
        assert!(RegionCode::parse("XX").is_err());
    }
}
