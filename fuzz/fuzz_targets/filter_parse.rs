//! The filter language's parser on arbitrary input: it never panics, an accepted expression
//! evaluates without panicking, and the source it keeps parses to the same tree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::domain::filter::{ContactAttributes, FilterExpr};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = FilterExpr::parse(source) else {
        return;
    };
    let reparsed = FilterExpr::parse(expr.source()).expect("the kept source parses again");
    assert_eq!(reparsed.root(), expr.root());
    let fields = serde_json::json!({"plan": "gold", "age": 30, "vip": true, "": "x"});
    let contact = ContactAttributes {
        phone: "+4915112345678",
        first_name: Some("Ada"),
        last_name: None,
        email: Some("ada@example.com"),
        gender: None,
        time_zone: Some("Europe/Berlin"),
        country: Some("DE"),
        number_type: Some("mobile"),
        opted_out: false,
        fields: fields.as_object().expect("an object"),
    };
    let _ = expr.matches(&contact);
});
