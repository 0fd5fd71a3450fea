//! An inbound message as it arrives: arbitrary JSON in the shape of an MO callback, with an
//! optional `auto_update` to test it against. Nothing panics; the sender parses or is refused;
//! keyword matching sees a trimmed message; a group keyword only ever matches its own number.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::domain::auto_update::AutoUpdate;
use roster::domain::keywords::{ConsentKeywords, group_request, normalize};
use roster::domain::msisdn::Msisdn;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let text = |field: &str| message.get(field).and_then(Value::as_str).unwrap_or_default();
    let (from, to, body) = (text("from"), text("to"), text("body"));
    let _ = Msisdn::parse(from, None);

    let normalized = normalize(body);
    assert_eq!(normalized.trim(), normalized, "normalize leaves no outer whitespace");
    let _ = ConsentKeywords::default().classify(body);

    // The callback's auto_update, re-validated as it is when read from the database.
    let Some(auto_update) = message
        .get("auto_update")
        .and_then(|value| serde_json::from_value::<AutoUpdate>(value.clone()).ok())
    else {
        return;
    };
    if group_request(&auto_update, to, body).is_some() {
        let digits = |number: &str| number.chars().filter(char::is_ascii_digit).collect::<String>();
        assert_eq!(digits(auto_update.to.as_str()), digits(to));
    }
});
