//! The fast E.164 path against rlibphonenumber's general parser, verdict for verdict, on over a
//! million numbers a run: every region's example numbers and their near misses, national and
//! formatted forms, and random digits of every length after every calling code.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType};
use roster::domain::fast_e164;
use roster::domain::msisdn::{Msisdn, RegionCode};

const TYPES: [PhoneNumberType; 11] = [
    PhoneNumberType::FixedLine,
    PhoneNumberType::Mobile,
    PhoneNumberType::TollFree,
    PhoneNumberType::PremiumRate,
    PhoneNumberType::SharedCost,
    PhoneNumberType::VoIP,
    PhoneNumberType::PersonalNumber,
    PhoneNumberType::Pager,
    PhoneNumberType::UAN,
    PhoneNumberType::VoiceMail,
    PhoneNumberType::FixedLineOrMobile,
];

fn random_digits(rng: &mut StdRng, count: usize) -> String {
    (0..count)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Every input with the region it is parsed with.
fn inputs(rng: &mut StdRng) -> Vec<(String, Option<RegionCode>)> {
    let mut inputs = Vec::new();
    let mut e164_examples = Vec::new();
    for region in PHONE_NUMBER_UTIL.get_supported_regions() {
        let region_code = RegionCode::parse(&region.to_string()).ok();
        for kind in TYPES {
            let Ok(example) =
                PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(region, kind)
            else {
                continue;
            };
            let e164 = example.format_as(PhoneNumberFormat::E164).into_owned();
            let national = example.format_as(PhoneNumberFormat::National).into_owned();
            let international = example
                .format_as(PhoneNumberFormat::International)
                .into_owned();
            inputs.push((national, region_code));
            inputs.push((international.clone(), None));
            inputs.push((international.replace(' ', "-"), region_code));
            inputs.push((format!("00{}", &e164[1..]), region_code));
            inputs.push((e164[1..].to_owned(), None));
            // Found by fuzzing: punctuation without a `+` is not international to the library.
            inputs.push((international[1..].to_owned(), None));
            // Found by fuzzing: over-long input is refused on both paths, however it is padded.
            inputs.push((format!("+{}{}", "-".repeat(64), &e164[1..]), None));
            e164_examples.push(e164);
        }
    }
    for e164 in &e164_examples {
        let digits = &e164[1..];
        // Near misses: a digit changed, dropped or added anywhere.
        for position in 0..digits.len() {
            let mut changed: Vec<u8> = digits.bytes().collect();
            changed[position] = b'0' + (changed[position] - b'0' + 1) % 10;
            inputs.push((
                format!("+{}", String::from_utf8(changed).unwrap_or_default()),
                None,
            ));
            inputs.push((
                format!("+{}{}", &digits[..position], &digits[position + 1..]),
                None,
            ));
            inputs.push((
                format!(
                    "+{}{}{}",
                    &digits[..position],
                    rng.random_range(0..10),
                    &digits[position..]
                ),
                None,
            ));
        }
        // The example's leading digits with random tails, mostly valid numbers of the same kind.
        for _ in 0..60 {
            let keep = rng.random_range(1..digits.len());
            let tail = random_digits(rng, digits.len() - keep);
            inputs.push((format!("+{}{tail}", &digits[..keep]), None));
        }
    }
    // Random digits of every length after every calling code.
    let codes: Vec<i32> = PHONE_NUMBER_UTIL.get_supported_calling_codes().collect();
    while inputs.len() < 1_100_000 {
        let code = codes[rng.random_range(0..codes.len())];
        let length = rng.random_range(1..=15);
        inputs.push((format!("+{code}{}", random_digits(rng, length)), None));
    }
    inputs
}

#[test]
fn fast_path_matches_the_library_on_a_million_numbers() {
    assert!(
        fast_e164::enabled(),
        "the fast path's tables were not built"
    );
    let mut rng = StdRng::seed_from_u64(0x5eed_e164);
    let inputs = inputs(&mut rng);
    assert!(inputs.len() >= 1_000_000);
    let mut fast_answers = 0;
    let mut valid_international = 0;
    let mut differences = Vec::new();
    for (input, region) in &inputs {
        if fast_e164::parse(input).is_some() {
            fast_answers += 1;
        }
        let ours = Msisdn::parse(input, *region);
        let library = Msisdn::parse_with_library(input, *region);
        if input.starts_with('+') && library.is_ok() {
            valid_international += 1;
        }
        if ours != library && differences.len() < 20 {
            differences.push(format!("{input:?} ({region:?}): {ours:?} != {library:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "verdicts differ:\n{}",
        differences.join("\n")
    );
    // The fast path must actually carry most valid international numbers (it leaves those with
    // leading zeros or a strippable national prefix to the library).
    eprintln!(
        "{} numbers compared; {valid_international} valid international; the fast path \
         answered {fast_answers}",
        inputs.len()
    );
    assert!(
        fast_answers * 10 >= valid_international * 8,
        "the fast path answered {fast_answers} of {valid_international} valid international numbers"
    );
}
