//! A batch's body and a placeholder value, on arbitrary input: parsing and rendering never
//! panic, a body rendered with its own placeholders is itself, counting agrees with the text
//! sent, and `smart` only ever sends GSM-7 without changing a letter.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::domain::sms::{Encoding, EncodingChoice, encode, fits_gsm7, segments};
use roster::domain::template::Template;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the body; the rest stands in for every placeholder's value.
    let (body, value) = text.split_once('\n').unwrap_or((text, ""));
    let template = Template::parse(body);
    let own: Vec<String> = template
        .names()
        .iter()
        .map(|name| format!("${{{name}}}"))
        .collect();
    assert_eq!(template.render(&own), body);
    let values = vec![value.to_owned(); template.names().len()];
    let message = template.render(&values);
    let letters = |text: &str| -> String { text.chars().filter(|ch| ch.is_alphanumeric()).collect() };
    for choice in [EncodingChoice::Auto, EncodingChoice::Smart, EncodingChoice::Ucs2] {
        let (sent, counted) = encode(&message, choice);
        assert_eq!(segments(&sent, counted.encoding), counted);
        assert!(counted.parts >= 1);
        if counted.encoding == Encoding::Gsm7 {
            assert!(fits_gsm7(&sent));
        }
        if choice == EncodingChoice::Smart {
            assert_eq!(letters(&sent), letters(&message));
        } else {
            assert_eq!(sent, message);
        }
    }
});
