//! Phone-number parsing, ns per number on one core: rlibphonenumber's `parse` + `is_valid` (the
//! baseline the issue measured), `Msisdn::parse_with_library` (what Roster did before the fast
//! path: parse, validity, type and region), and `Msisdn::parse` (the fast path, falling back to
//! the library). Run with `cargo run --release --example phone_parse_bench [COUNT]`.

use std::hint::black_box;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumber, PhoneNumberFormat, PhoneNumberType, Region};
use roster::domain::fast_e164;
use roster::domain::msisdn::Msisdn;

const MIX: [&str; 15] = [
    "US", "GB", "DE", "FR", "IN", "BR", "NG", "RW", "JP", "AU", "MX", "ZA", "ID", "ES", "IT",
];

/// Valid E.164 numbers of `region`: its example mobile and fixed-line numbers with random tails,
/// kept only when the library finds them valid.
fn numbers(rng: &mut StdRng, region: &str, count: usize) -> Vec<String> {
    let region = Region::from_code(region).expect("region");
    let examples: Vec<String> = [PhoneNumberType::Mobile, PhoneNumberType::FixedLine]
        .into_iter()
        .filter_map(|kind| {
            PHONE_NUMBER_UTIL
                .get_example_number_for_type_and_region(region, kind)
                .ok()
        })
        .map(|n| n.format_as(PhoneNumberFormat::E164).into_owned())
        .collect();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let example = &examples[rng.random_range(0..examples.len())];
        let keep = example.len().min(6);
        let tail: String = (keep..example.len())
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let candidate = format!("{}{tail}", &example[..keep]);
        if candidate.parse::<PhoneNumber>().is_ok_and(|n| n.is_valid()) {
            out.push(candidate);
        }
    }
    out
}

fn time_per_number(label: &str, inputs: &[String], parse: impl Fn(&str) -> bool) -> f64 {
    // One untimed pass warms caches and the libraries' lazily compiled patterns.
    let valid = inputs.iter().filter(|n| parse(n)).count();
    assert_eq!(valid, inputs.len(), "{label}: every input is valid");
    let start = Instant::now();
    for input in inputs {
        black_box(parse(black_box(input)));
    }
    let ns = start.elapsed().as_nanos() as f64 / inputs.len() as f64;
    println!("| {label} | {ns:.0} |");
    ns
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let mut rng = StdRng::seed_from_u64(7);
    let us = numbers(&mut rng, "US", count);
    let per_region: Vec<Vec<String>> = MIX
        .iter()
        .map(|region| numbers(&mut rng, region, count / MIX.len() + 1))
        .collect();
    let mut mix: Vec<String> = (0..count)
        .map(|i| per_region[i % MIX.len()][i / MIX.len()].clone())
        .collect();
    mix.truncate(count);

    for (name, inputs) in [("US E.164", &us), ("15 countries, interleaved", &mix)] {
        println!("\n{name}, {} numbers, ns per number:\n", inputs.len());
        println!("| path | ns |");
        println!("|---|---:|");
        let baseline = time_per_number("rlibphonenumber parse + is_valid", inputs, |n| {
            n.parse::<PhoneNumber>().is_ok_and(|n| n.is_valid())
        });
        time_per_number(
            "Msisdn::parse_with_library (parse, valid, type, region)",
            inputs,
            |n| Msisdn::parse_with_library(n, None).is_ok(),
        );
        let fast = time_per_number("Msisdn::parse (fast path)", inputs, |n| {
            Msisdn::parse(n, None).is_ok()
        });
        println!("\nfast path: {:.2}× the baseline's time", fast / baseline);
        let answered = inputs
            .iter()
            .filter(|n| fast_e164::parse(n).is_some())
            .count();
        println!(
            "answered without the library: {:.1}%",
            100.0 * answered as f64 / inputs.len() as f64
        );
    }
    println!("\nper region, answered without the library:");
    for (region, numbers) in MIX.iter().zip(&per_region) {
        let answered = numbers
            .iter()
            .filter(|n| fast_e164::parse(n).is_some())
            .count();
        println!(
            "  {region}: {:.0}%",
            100.0 * answered as f64 / numbers.len() as f64
        );
    }
}
