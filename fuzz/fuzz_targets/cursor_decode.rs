//! The `next` cursor a client sends back, on arbitrary input: it never panics, and a cursor it
//! accepts encodes to text that decodes to the same cursor.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::api::paging::{decode_cursor, encode_cursor};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cursor) = decode_cursor("next", text) else {
        return;
    };
    let again = decode_cursor("next", &encode_cursor(&cursor)).expect("an encoded cursor decodes");
    assert_eq!(again, cursor);
});
