//! Format, encoding and delimiter detection on arbitrary bytes, then reading whatever was
//! detected (mostly CSV): never a panic, and every row within the limits.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use roster::import::read::{Format, MAX_COLUMNS, detect, open};

fuzz_target!(|data: &[u8]| {
    tolerate_third_party_panics();
    let Ok(detected) = detect(&mut Cursor::new(data.to_vec()), Some("upload.csv")) else {
        return;
    };
    let Ok(table) = open(Cursor::new(data.to_vec()), &detected, None) else {
        return;
    };
    let width = table.headers.len();
    assert!(width <= MAX_COLUMNS);
    let mut last_row = 0;
    for row in table.rows.take(10_000) {
        let Ok(row) = row else { continue };
        // Text files are read front to back; a malformed spreadsheet may list rows out of order.
        if matches!(detected.format, Format::Csv | Format::Vcard) {
            assert!(row.number > last_row, "row {} after row {last_row}", row.number);
        }
        last_row = row.number;
        assert!(row.cells.len() >= width && row.cells.len() <= MAX_COLUMNS);
        assert!(row.cells.iter().any(|cell| !cell.text.is_empty()), "empty rows are skipped");
        assert!(row.cells.iter().all(|cell| cell.text.trim() == cell.text));
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
