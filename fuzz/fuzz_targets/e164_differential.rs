//! The fast E.164 path against rlibphonenumber's general parser on arbitrary input: the same
//! verdict, always, with or without a default region.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::domain::msisdn::{Msisdn, RegionCode};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for region in [None, RegionCode::parse("US").ok(), RegionCode::parse("GB").ok()] {
        assert_eq!(
            Msisdn::parse(input, region),
            Msisdn::parse_with_library(input, region),
            "{input:?} with {region:?}"
        );
    }
});
