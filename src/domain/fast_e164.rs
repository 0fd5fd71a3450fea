//! A fast path for the common case of phone-number parsing: input that is already international
//! (`+` and digits, perhaps with spaces, dashes, dots or parentheses). It reaches the verdicts of
//! rlibphonenumber's `parse` + `is_valid` + `get_type` + `get_region_code` without the general
//! parser's work, from tables built once out of the metadata the library itself ships.
//!
//! It only ever answers for numbers it finds valid; everything else — invalid numbers (whose
//! reason the library words), national formats, `00` prefixes, numbers whose national prefix the
//! library might strip, numbers with more than one leading zero — returns `None`, and the caller
//! asks the library. The tables check themselves against the library when they are built and stand down
//! if any verdict differs, and a differential test compares the two on over a million numbers.

// The library marks the proto's pattern fields deprecated because its own wrapper empties them;
// our copy, decoded from the metadata file, keeps them.
#![allow(deprecated)]

use std::sync::{LazyLock, OnceLock};

use prost::Message;
// Numbers reach the patterns as ASCII digits, so `\d` need only mean `[0-9]` (`unicode(false)`):
// Unicode's digits make every automaton many times larger (the NANP regions' patterns alone took
// a quarter of a gigabyte compiled with Unicode classes).
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneMetadata, PhoneMetadataCollection};

use super::msisdn::{Msisdn, NumberType, ParsedNumber};

/// The metadata file rlibphonenumber embeds, found by the build script.
static METADATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/phone_metadata.bin"));

/// Limits of the library's parser, repeated: numbers outside them are its to refuse.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;
/// E.164's limit, which `Msisdn` also enforces.
const MAX_E164_DIGITS: usize = 15;

/// A pattern as the library uses it: absent patterns match nothing, and (like the library)
/// a pattern too short to carry its `^(?:…)$` wrapping matches everything. Compiled on first use.
struct Pattern {
    source: Option<String>,
    compiled: OnceLock<Option<Regex>>,
}

impl Pattern {
    /// `anchored_full`: the whole pattern as stored (`^(?:p)$`); otherwise only its start
    /// (`^(?:p)`), as the library's "anchor start" matching does.
    fn new(stored: Option<&str>, anchored_full: bool) -> Self {
        let source = stored.map(|base| {
            if base.len() < 6 {
                String::new()
            } else if anchored_full {
                base.to_owned()
            } else {
                base[..base.len() - 1].to_owned()
            }
        });
        Self {
            source,
            compiled: OnceLock::new(),
        }
    }

    fn is_match(&self, text: &str) -> bool {
        self.compiled
            .get_or_init(|| {
                self.source
                    .as_deref()
                    .and_then(|p| RegexBuilder::new(p).unicode(false).build().ok())
            })
            .as_ref()
            .is_some_and(|re| re.is_match(text))
    }

    fn exists(&self) -> bool {
        self.source.is_some()
    }
}

/// One type's rules: its possible lengths and its pattern's place in the region's set.
struct Desc {
    possible_lengths: Vec<i32>,
    /// `Some(i)`: pattern `i` of the region's set; `None`: no pattern, never matches.
    pattern: Option<usize>,
    /// A pattern too short to carry its wrapping matches everything, in the library too.
    matches_all: bool,
}

impl Desc {
    fn lengths_allow(&self, length: usize) -> bool {
        self.possible_lengths.is_empty() || self.possible_lengths.contains(&(length as i32))
    }
}

/// The order of a region's descs: the general one, then the library's order of precedence.
const GENERAL: usize = 0;
const SPECIAL: [(usize, NumberType); 8] = [
    (1, NumberType::PremiumRate),
    (2, NumberType::TollFree),
    (3, NumberType::SharedCost),
    (4, NumberType::Voip),
    (5, NumberType::PersonalNumber),
    (6, NumberType::Pager),
    (7, NumberType::Uan),
    (8, NumberType::Voicemail),
];
const FIXED_LINE: usize = 9;
const MOBILE: usize = 10;

/// One region's (or non-geographic entity's) rules.
struct RegionRules {
    /// ISO code, or `None` for the non-geographic entity `001`.
    country: Option<String>,
    leading_digits: Pattern,
    descs: Vec<Desc>,
    /// Every type pattern of the region in one automaton: a single pass over the number tells
    /// which of them match it (each is anchored at both ends, as the library matches them).
    patterns: Vec<String>,
    set: OnceLock<Option<RegexSet>>,
    same_mobile_and_fixed_line: bool,
}

impl RegionRules {
    fn new(metadata: &PhoneMetadata) -> Self {
        let all = [
            &metadata.general_desc,
            &metadata.premium_rate,
            &metadata.toll_free,
            &metadata.shared_cost,
            &metadata.voip,
            &metadata.personal_number,
            &metadata.pager,
            &metadata.uan,
            &metadata.voicemail,
            &metadata.fixed_line,
            &metadata.mobile,
        ];
        let mut patterns = Vec::new();
        let descs = all
            .iter()
            .map(|desc| {
                let stored = desc
                    .as_ref()
                    .and_then(|d| d.national_number_pattern.as_deref());
                let matches_all = stored.is_some_and(|p| p.len() < 6);
                let pattern = stored.filter(|p| p.len() >= 6).map(|p| {
                    patterns.push(p.to_owned());
                    patterns.len() - 1
                });
                Desc {
                    possible_lengths: desc
                        .as_ref()
                        .map(|d| d.possible_length.clone())
                        .unwrap_or_default(),
                    pattern,
                    matches_all,
                }
            })
            .collect();
        Self {
            country: Some(metadata.id.clone()).filter(|id| id != "001"),
            leading_digits: Pattern::new(metadata.leading_digits.as_deref(), false),
            descs,
            patterns,
            set: OnceLock::new(),
            same_mobile_and_fixed_line: metadata
                .same_mobile_and_fixed_line_pattern
                .unwrap_or(false),
        }
    }

    /// The library's `get_number_type_helper`; `None` is its `Unknown` (not a valid number).
    fn number_type(&self, nsn: &str) -> Option<NumberType> {
        if !self.descs[GENERAL].lengths_allow(nsn.len()) {
            return None;
        }
        let set = self
            .set
            .get_or_init(|| {
                RegexSetBuilder::new(&self.patterns)
                    .unicode(false)
                    .build()
                    .ok()
            })
            .as_ref()?;
        let matched = set.matches(nsn);
        let holds = |index: usize| {
            let desc = &self.descs[index];
            desc.lengths_allow(nsn.len())
                && (desc.matches_all || desc.pattern.is_some_and(|p| matched.matched(p)))
        };
        if !holds(GENERAL) {
            return None;
        }
        if let Some((_, kind)) = SPECIAL.iter().find(|(index, _)| holds(*index)) {
            return Some(*kind);
        }
        if holds(FIXED_LINE) {
            if self.same_mobile_and_fixed_line || holds(MOBILE) {
                return Some(NumberType::FixedLineOrMobile);
            }
            return Some(NumberType::FixedLine);
        }
        if !self.same_mobile_and_fixed_line && holds(MOBILE) {
            return Some(NumberType::Mobile);
        }
        None
    }
}

/// The regions sharing one country calling code, in the library's order.
struct CallingCode {
    regions: Vec<RegionRules>,
    /// The main region's national prefix for parsing: the library may strip it even from an
    /// international number, so a number it matches is left to the library.
    national_prefix: Pattern,
}

struct Tables {
    /// Indexed by calling code (1 to 999).
    codes: Vec<Option<CallingCode>>,
}

/// Built on first use. That the tables agree with the library (the metadata is the library's
/// own, and its version is pinned) is checked by the tests, not at start-up: checking every
/// region's examples compiles all of the library's patterns, which then stay in memory (about
/// 150 MB) in every process that parses a number.
static TABLES: LazyLock<Option<Tables>> = LazyLock::new(build_tables);

fn build_tables() -> Option<Tables> {
    let collection = PhoneMetadataCollection::decode(METADATA).ok()?;
    if collection.metadata.is_empty() {
        return None;
    }
    let by_id: std::collections::HashMap<(String, i32), &PhoneMetadata> = collection
        .metadata
        .iter()
        .map(|m| ((m.id.clone(), m.country_code.unwrap_or(0)), m))
        .collect();
    let mut codes: Vec<Option<CallingCode>> = (0..1000).map(|_| None).collect();
    for (code, slot) in codes.iter_mut().enumerate().skip(1) {
        let code = code as i32;
        let Some(regions) = PHONE_NUMBER_UTIL.get_regions_for_country_calling_code(code) else {
            continue;
        };
        let mut rules = Vec::new();
        for region in regions {
            let id = region.to_string();
            let metadata = by_id
                .get(&(id.clone(), code))
                .or_else(|| by_id.get(&(id, 0)))?;
            rules.push((RegionRules::new(metadata), *metadata));
        }
        let main = rules.first()?.1;
        *slot = Some(CallingCode {
            national_prefix: Pattern::new(main.national_prefix_for_parsing.as_deref(), false),
            regions: rules.into_iter().map(|(rules, _)| rules).collect(),
        });
    }
    Some(Tables { codes })
}

/// Every example number the metadata carries, through both paths: any difference and the
/// tables are not to be trusted (a different metadata file than the library's, say).
#[cfg(test)]
fn agrees_with_library(tables: &Tables) -> bool {
    let Ok(collection) = PhoneMetadataCollection::decode(METADATA) else {
        return false;
    };
    for metadata in &collection.metadata {
        let code = metadata.country_code.unwrap_or(0);
        let descs = [
            &metadata.fixed_line,
            &metadata.mobile,
            &metadata.toll_free,
            &metadata.premium_rate,
            &metadata.voip,
        ];
        for example in descs
            .into_iter()
            .flatten()
            .filter_map(|d| d.example_number.as_deref())
        {
            let input = format!("+{code}{example}");
            let fast = parse_with(tables, &input);
            if fast.is_some() && Msisdn::parse_with_library(&input, None).ok() != fast {
                return false;
            }
        }
    }
    true
}

/// The fast verdict for `input`, or `None` to ask the library.
pub fn parse(input: &str) -> Option<ParsedNumber> {
    parse_with(TABLES.as_ref()?, input)
}

fn parse_with(tables: &Tables, input: &str) -> Option<ParsedNumber> {
    let rest = input.trim().strip_prefix('+')?;
    let mut digits = [0u8; MAX_NSN + 3];
    let mut count = 0;
    for byte in rest.bytes() {
        match byte {
            b'0'..=b'9' => {
                *digits.get_mut(count)? = byte;
                count += 1;
            }
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return None,
        }
    }
    let digits = std::str::from_utf8(&digits[..count]).ok()?;
    if digits.starts_with('0') || count > MAX_E164_DIGITS {
        return None;
    }
    // The first one to three digits that form a calling code, as the library extracts them.
    let (code, calling) = (1..=3).find_map(|length| {
        let code: usize = digits.get(..length)?.parse().ok()?;
        let calling = tables.codes.get(code)?.as_ref()?;
        Some((length, calling))
    })?;
    let nsn = &digits[code..];
    // One leading zero (Italy's fixed lines) survives the library's parse unchanged; several
    // are counted and re-added by rules of their own, which the library keeps.
    if !(MIN_NSN..=MAX_NSN).contains(&nsn.len())
        || nsn.starts_with("00")
        || (calling.national_prefix.exists() && calling.national_prefix.is_match(nsn))
    {
        return None;
    }
    // The library's `get_region_for_number`: the only region, or the first whose leading digits
    // match or whose rules know the number.
    let (rules, number_type) = if calling.regions.len() == 1 {
        let rules = &calling.regions[0];
        (rules, rules.number_type(nsn)?)
    } else {
        calling.regions.iter().find_map(|rules| {
            if rules.leading_digits.is_match(nsn) {
                // The region is decided; an unknown type makes the number invalid there.
                Some(rules.number_type(nsn).map(|kind| (rules, kind)))
            } else {
                rules.number_type(nsn).map(|kind| Some((rules, kind)))
            }
        })??
    };
    Some(ParsedNumber {
        msisdn: Msisdn::from_trusted(format!("+{digits}")),
        number_type,
        country: rules.country.clone(),
    })
}

/// Whether the fast path is in use (its tables were built).
pub fn enabled() -> bool {
    TABLES.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_build_and_agree_with_the_library() {
        let tables = TABLES
            .as_ref()
            .expect("the fast path's tables were not built");
        assert!(
            agrees_with_library(tables),
            "the fast path disagrees with rlibphonenumber on a region's example numbers"
        );
    }

    #[test]
    fn answers_for_valid_international_numbers() {
        let us = parse("+1 (415) 555-2671").expect("fast path for a US number");
        assert_eq!(us.msisdn.as_str(), "+14155552671");
        assert_eq!(us.country.as_deref(), Some("US"));
        let de = parse("+49 151 12345678").expect("fast path for a German mobile");
        assert_eq!(de.number_type, NumberType::Mobile);
        let rome = parse("+39 06 1234 5678").expect("an Italian fixed line keeps its zero");
        assert_eq!(rome.msisdn.as_str(), "+390612345678");
        let toll_free = parse("+80012345678").expect("non-geographic toll free");
        assert_eq!(toll_free.country, None);
    }

    #[test]
    fn leaves_everything_else_to_the_library() {
        for input in [
            "+1555",
            "0151 12345678",
            "+44 07400 123456",
            "+39 0012345678",
            "+1 415 555 2671 ext 5",
            "+4950411091234566",
        ] {
            assert_eq!(parse(input), None, "{input}");
        }
    }
}
