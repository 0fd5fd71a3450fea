//! The vCard reader on arbitrary bytes, forced to read them as vCard: never a panic, one row of
//! the fixed columns per contact, contacts numbered front to back.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use roster::import::read::{Detected, Format, VCARD_HEADERS, open};

fuzz_target!(|data: &[u8]| {
    tolerate_third_party_panics();
    let detected = Detected {
        format: Format::Vcard,
        // Detected from the content, as for a stored `Detected` without one.
        encoding: None,
        delimiter: None,
        sheets: Vec::new(),
    };
    let Ok(table) = open(Cursor::new(data.to_vec()), &detected, None) else {
        return;
    };
    assert_eq!(table.headers, VCARD_HEADERS);
    let mut last_row = 1;
    for row in table.rows.take(10_000) {
        let number = match row {
            Ok(row) => {
                assert_eq!(row.cells.len(), VCARD_HEADERS.len());
                row.number
            }
            Err(error) => match error.row() {
                Some(number) => number,
                None => continue,
            },
        };
        assert!(number > last_row, "row {number} after row {last_row}");
        last_row = number;
    }
});

/// calamine and calcard (and the zip and XML readers under calamine) panic on some malformed
/// files. The reader catches those panics and returns an error, and that is what this target
/// checks, so they are let through; any other panic is a bug of ours and aborts as libFuzzer's
/// hook would, so the fuzzer reports it. (A panic escaping `open` or the rows still aborts in
/// libfuzzer-sys's own wrapper.)
fn tolerate_third_party_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report_and_abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let third_party = info.location().is_some_and(|location| {
                ["/calamine-", "/calcard-", "/zip-", "/quick-xml-", "/mail-parser-"]
                    .iter()
                    .any(|krate| location.file().contains(krate))
            });
            if !third_party {
                report_and_abort(info);
            }
        }));
    });
}
