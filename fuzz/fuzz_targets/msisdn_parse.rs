//! Phone-number parsing on arbitrary input: it never panics, and a number it accepts is in
//! canonical E.164 form — parsing that form again gives the same number, type and country.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::domain::msisdn::{Msisdn, RegionCode};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for region in [None, RegionCode::parse("US").ok(), RegionCode::parse("DE").ok()] {
        if let Ok(parsed) = Msisdn::parse(input, region) {
            let e164 = parsed.msisdn.as_str();
            assert!(e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()));
            assert!(e164.len() <= 16, "{e164}");
            let again = Msisdn::parse(e164, None).expect("canonical form parses");
            assert_eq!(again, parsed, "{input:?} -> {e164}");
        }
    }
});
