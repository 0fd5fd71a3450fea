//! The XLSX, XLS and ODS readers on arbitrary bytes, each forced in turn: no panic escapes them,
//! no allocation runs away (every reader is held to the caps of `Limits`; the corpus holds the
//! shapes of the bombs that made them necessary, and run.sh passes `-rss_limit_mb` to catch a
//! regression), and rows stay within the limits.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use roster::import::read::{
    Detected, Format, HeaderRow, Limits, MAX_COLUMNS, detect_with, open_with,
};

fuzz_target!(|data: &[u8]| {
    tolerate_third_party_panics();
    // Caps lower than the defaults keep each run short; the bombs in the corpus pass them as
    // they pass the defaults.
    let limits = Limits {
        rows: 20_000,
        sheet_rows: 20_000,
        inflated_entry_bytes: 64 << 20,
        inflated_file_bytes: 128 << 20,
        ..Limits::default()
    };
    // Detection opens a workbook to list its sheets.
    let listed = detect_with(&mut Cursor::new(data.to_vec()), None, &limits)
        .map(|detected| detected.sheets)
        .unwrap_or_default();
    for format in [Format::Xlsx, Format::Xls, Format::Ods] {
        let detected = Detected {
            format,
            encoding: None,
            delimiter: None,
            sheets: Vec::new(),
        };
        // The default sheet, then the last listed one by name.
        let sheets = [None, listed.last().map(String::as_str)];
        for sheet in sheets {
            let Ok(table) = open_with(
                Cursor::new(data.to_vec()),
                &detected,
                sheet,
                HeaderRow::Detect,
                &limits,
            ) else {
                continue;
            };
            assert!(table.headers.len() <= MAX_COLUMNS);
            for row in table.rows.take(10_000) {
                if let Ok(row) = row {
                    assert!(row.cells.len() <= MAX_COLUMNS);
                }
            }
        }
    }
});

/// calamine and calcard (and the zip and XML readers under calamine and under Roster's own
/// readers) panic on some malformed files. The reader catches those panics and returns an error,
/// and that is what this target checks, so they are let through; any other panic is a bug of
/// ours and aborts as libFuzzer's hook would, so the fuzzer reports it. (A panic escaping `open`
/// or the rows still aborts in libfuzzer-sys's own wrapper.)
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
