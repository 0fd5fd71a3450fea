//! Every cap of [`Limits`], at its value and one past it, with files made here; and the shapes
//! of the spreadsheet bombs that made the caps necessary (also the fuzzers' seeds).

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use super::*;

/// A ZIP archive of `(name, content)` entries, deflated.
pub(super) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_level(Some(9));
    for (name, content) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>"#;

const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;

/// The smallest XLSX this reader takes: a workbook of one sheet whose `<sheetData>` holds
/// `rows`, and shared strings holding `strings` (inside `<sst>`).
pub(super) fn xlsx_of(rows: &str, strings: &str) -> Vec<u8> {
    let sheet = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
    );
    let shared = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{strings}</sst>"#
    );
    zip_of(&[
        ("xl/workbook.xml", WORKBOOK.as_bytes()),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
        ("xl/sharedStrings.xml", shared.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
    ])
}

/// An ODS file whose one sheet holds `rows` (`<table:table-row>` elements).
pub(super) fn ods_of(rows: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="Contacts">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    );
    zip_of(&[
        (
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet".as_slice(),
        ),
        ("content.xml", content.as_bytes()),
    ])
}

/// An inline-string cell.
fn cell(text: &str) -> String {
    format!(r#"<c t="inlineStr"><is><t>{text}</t></is></c>"#)
}

fn ods_row(attributes: &str, text: &str) -> String {
    format!(
        r#"<table:table-row {attributes}><table:table-cell office:value-type="string"><text:p>{text}</text:p></table:table-cell></table:table-row>"#
    )
}

/// Reads the whole file as the preview does: every row, stopping at an error for the file.
fn read_all(bytes: &[u8], limits: &Limits) -> Result<Vec<SourceRow>, ReadError> {
    let detected = detect_with(&mut Cursor::new(bytes.to_vec()), None, limits)?;
    let table = open_with(
        Cursor::new(bytes.to_vec()),
        &detected,
        None,
        HeaderRow::Absent,
        limits,
    )?;
    let mut rows = Vec::new();
    for row in table.rows {
        match row {
            Ok(row) => rows.push(row),
            Err(error) if error.is_fatal() => return Err(error),
            Err(_) => {}
        }
    }
    Ok(rows)
}

fn cap_of(result: Result<Vec<SourceRow>, ReadError>) -> Option<Cap> {
    match result {
        Err(ReadError::OverCap { cap, .. }) => Some(cap),
        Err(other) => panic!("not a cap: {other}"),
        Ok(_) => None,
    }
}

/// The smallest value of one cap at which `bytes` reads whole; one less passes the cap. Found
/// by bisection, for caps whose exact use depends on how much of each part is read.
fn smallest_passing(bytes: &[u8], cap: Cap, set: impl Fn(&mut Limits, u64)) -> u64 {
    let read = |value: u64| {
        let mut limits = Limits::default();
        set(&mut limits, value);
        cap_of(read_all(bytes, &limits))
    };
    let (mut low, mut high) = (0u64, 1u64 << 32);
    assert_eq!(read(high), None, "reads with the cap out of the way");
    while low + 1 < high {
        let middle = low + (high - low) / 2;
        match read(middle) {
            None => high = middle,
            Some(found) => {
                assert_eq!(found, cap);
                low = middle;
            }
        }
    }
    assert_eq!(read(high), None);
    assert_eq!(read(high - 1), Some(cap));
    high
}

#[test]
fn rows_at_and_past_the_cap() {
    let limits = Limits {
        rows: 3,
        ..Limits::default()
    };
    let csv = b"+14155550001\n+14155550002\n+14155550003\n";
    assert_eq!(read_all(csv, &limits).unwrap().len(), 3);
    let csv = b"+14155550001\n+14155550002\n+14155550003\n+14155550004\n";
    assert_eq!(cap_of(read_all(csv, &limits)), Some(Cap::Rows));
    // Spreadsheets alike, however the rows come.
    let rows = |count: usize| {
        (0..count)
            .map(|_| format!("<row>{}</row>", cell("x")))
            .collect::<String>()
    };
    assert_eq!(read_all(&xlsx_of(&rows(3), ""), &limits).unwrap().len(), 3);
    assert_eq!(
        cap_of(read_all(&xlsx_of(&rows(4), ""), &limits)),
        Some(Cap::Rows)
    );
    let repeated = |times: u32| {
        ods_of(&ods_row(
            &format!(r#"table:number-rows-repeated="{times}""#),
            "x",
        ))
    };
    assert_eq!(read_all(&repeated(3), &limits).unwrap().len(), 3);
    assert_eq!(cap_of(read_all(&repeated(4), &limits)), Some(Cap::Rows));
}

#[test]
fn the_message_names_the_cap_and_its_value() {
    let error = Cap::Rows.exceeded(&Limits::default());
    assert_eq!(
        error.to_string(),
        "the file has more data rows than an import takes (cap rows = 10000000)"
    );
    assert!(error.is_fatal());
}

#[test]
fn sheet_rows_at_and_past_the_cap() {
    let limits = Limits {
        sheet_rows: 5,
        ..Limits::default()
    };
    let at = |number: u32| xlsx_of(&format!(r#"<row r="{number}">{}</row>"#, cell("x")), "");
    assert_eq!(read_all(&at(5), &limits).unwrap()[0].number, 5);
    assert_eq!(cap_of(read_all(&at(6), &limits)), Some(Cap::SheetRows));
    // Rows without numbers count on from the last.
    let unnumbered = (0..6)
        .map(|_| format!("<row>{}</row>", cell("x")))
        .collect::<String>();
    assert_eq!(
        cap_of(read_all(&xlsx_of(&unnumbered, ""), &limits)),
        Some(Cap::SheetRows)
    );
    // ODS: a row repeated up to the last row, and one past it.
    let ods = |times: u32| {
        ods_of(&format!(
            "{}{}",
            ods_row("", "header"),
            ods_row(&format!(r#"table:number-rows-repeated="{times}""#), "x")
        ))
    };
    assert_eq!(read_all(&ods(4), &limits).unwrap().len(), 5);
    assert_eq!(cap_of(read_all(&ods(5), &limits)), Some(Cap::SheetRows));
    // Empty rows repeated to the end of the grid and past it, as LibreOffice writes them, are
    // nothing to read.
    let trailing = ods_of(&format!(
        r#"{}<table:table-row table:number-rows-repeated="1000000000"><table:table-cell table:number-columns-repeated="16384"/></table:table-row>"#,
        ods_row("", "x")
    ));
    assert_eq!(read_all(&trailing, &limits).unwrap().len(), 1);
}

#[test]
fn cells_repeated_past_the_widest_row_refuse_the_row_not_the_file() {
    let ods = ods_of(&format!(
        "{}{}{}",
        ods_row("", "first"),
        r#"<table:table-row><table:table-cell table:number-columns-repeated="1000000000" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>"#,
        ods_row("", "kept")
    ));
    let detected = detect(&mut Cursor::new(ods.clone()), None).unwrap();
    let table = open_with_header(Cursor::new(ods), &detected, None, HeaderRow::Absent).unwrap();
    let rows: Vec<_> = table.rows.collect();
    assert!(matches!(
        rows[1],
        Err(ReadError::TooManyColumns { row: 2, .. })
    ));
    assert_eq!(rows[2].as_ref().unwrap().cells[0].text, "kept");
}

#[test]
fn zip_entries_at_and_past_the_cap() {
    let base = xlsx_of(&format!("<row>{}</row>", cell("x")), "");
    let entries = |extra: usize| {
        let mut archive = zip::ZipArchive::new(Cursor::new(base.clone())).unwrap();
        let mut parts: Vec<(String, Vec<u8>)> = (0..archive.len())
            .map(|index| {
                let mut file = archive.by_index(index).unwrap();
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut content).unwrap();
                (file.name().unwrap().into_owned(), content)
            })
            .collect();
        parts.extend((0..extra).map(|n| (format!("docProps/extra{n}.xml"), b"<x/>".to_vec())));
        let borrowed: Vec<(&str, &[u8])> = parts
            .iter()
            .map(|(name, content)| (name.as_str(), content.as_slice()))
            .collect();
        zip_of(&borrowed)
    };
    let limits = Limits {
        zip_entries: 10,
        ..Limits::default()
    };
    assert_eq!(read_all(&entries(6), &limits).unwrap().len(), 1);
    assert_eq!(
        cap_of(read_all(&entries(7), &limits)),
        Some(Cap::ZipEntries)
    );
}

#[test]
fn inflated_bytes_per_entry_at_and_past_the_cap() {
    // The shared strings are the largest part, and read to their end.
    let long = "y".repeat(20_000);
    let strings = format!("<si><t>{long}</t></si>");
    let bytes = xlsx_of(r#"<row><c t="s"><v>0</v></c></row>"#, &strings);
    let part_len = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{strings}</sst>"#
    )
    .len() as u64;
    let cap = smallest_passing(&bytes, Cap::InflatedEntryBytes, |limits, value| {
        limits.inflated_entry_bytes = value;
    });
    assert_eq!(cap, part_len);
    assert_eq!(
        read_all(&bytes, &Limits::default()).unwrap()[0].cells[0].text,
        long
    );
}

#[test]
fn inflated_bytes_per_file_at_and_past_the_cap() {
    let strings = format!("<si><t>{}</t></si>", "y".repeat(20_000));
    let bytes = xlsx_of(r#"<row><c t="s"><v>0</v></c></row>"#, &strings);
    let cap = smallest_passing(&bytes, Cap::InflatedFileBytes, |limits, value| {
        limits.inflated_file_bytes = value;
    });
    // More than the largest part: the others count too.
    assert!(cap > 20_000, "{cap}");
}

#[test]
fn xml_tokens_at_and_past_the_cap() {
    // The longest token: from the `<` of <t> to the `<` of </t>.
    let text = "z".repeat(30_000);
    let bytes = xlsx_of(&format!("<row>{}</row>", cell(&text)), "");
    let cap = smallest_passing(&bytes, Cap::XmlTokenBytes, |limits, value| {
        limits.xml_token_bytes = value;
    });
    assert_eq!(cap, "t>".len() as u64 + 30_000);
    // The same in an ODS file.
    let bytes = ods_of(&ods_row("", &text));
    let cap = smallest_passing(&bytes, Cap::XmlTokenBytes, |limits, value| {
        limits.xml_token_bytes = value;
    });
    assert_eq!(cap, "text:p>".len() as u64 + 30_000);
}

#[test]
fn held_bytes_at_and_past_the_cap() {
    let strings: String = (0..1000)
        .map(|n| format!("<si><t>name {n}</t></si>"))
        .collect();
    let bytes = xlsx_of(r#"<row><c t="s"><v>999</v></c></row>"#, &strings);
    let cap = smallest_passing(&bytes, Cap::HeldBytes, |limits, value| {
        limits.held_bytes = value;
    });
    // The text of the strings and an offset for each, with the sheet list and relationships.
    let text: usize = (0..1000).map(|n| format!("name {n}").len()).sum();
    assert!(cap >= (text + 4 * 1000) as u64, "{cap}");
    assert!(cap < (text + 4 * 1000 + 2000) as u64, "{cap}");
    assert_eq!(
        read_all(&bytes, &Limits::default()).unwrap()[0].cells[0].text,
        "name 999"
    );
}

#[test]
fn xls_file_bytes_at_and_past_the_cap() {
    let bytes = super::tests::xls_fixture();
    let at = Limits {
        xls_file_bytes: bytes.len() as u64,
        ..Limits::default()
    };
    assert!(read_all(&bytes, &at).is_ok());
    let past = Limits {
        xls_file_bytes: bytes.len() as u64 - 1,
        ..Limits::default()
    };
    assert_eq!(cap_of(read_all(&bytes, &past)), Some(Cap::XlsFileBytes));
}

#[test]
fn preview_time_at_and_past_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..5000).map(|n| format!("+1415555{n:04}\n")).collect();
    let csv = dir.path().join("numbers.csv");
    std::fs::write(&csv, &rows).unwrap();
    let xlsx = dir.path().join("numbers.xlsx");
    let cells: String = (0..5000)
        .map(|n| format!("<row>{}</row>", cell(&format!("+1415555{n:04}"))))
        .collect();
    std::fs::write(&xlsx, xlsx_of(&cells, "")).unwrap();
    for path in [&csv, &xlsx] {
        let (_, preview) =
            crate::import::preview::preview_with(path, None, None, &Limits::for_preview()).unwrap();
        assert_eq!(preview.total_rows, 5000);
        let past = Limits {
            deadline: Some((Instant::now(), Duration::ZERO)),
            ..Limits::default()
        };
        let error = crate::import::preview::preview_with(path, None, None, &past).unwrap_err();
        assert!(
            matches!(
                error,
                ReadError::OverCap {
                    cap: Cap::PreviewSeconds,
                    ..
                }
            ),
            "{error}"
        );
    }
}

/// The shapes of the spreadsheet bombs, at the default caps, and what stops each. Small enough
/// to run in a unit test and to seed the fuzzers; tests/api/imports.rs sends the full-size ones
/// to a server and watches its memory.
pub(super) fn bombs() -> Vec<(&'static str, Vec<u8>, Option<Cap>)> {
    let over_token = (super::limits::MAX_XML_TOKEN_BYTES + 1) as usize;
    vec![
        // One shared string of 'A's: one XML text longer than the token cap.
        (
            "xlsx_one_cell.xlsx",
            xlsx_of(
                r#"<row><c t="s"><v>0</v></c></row>"#,
                &format!("<si><t>{}</t></si>", "A".repeat(over_token)),
            ),
            Some(Cap::XmlTokenBytes),
        ),
        // An inline string the same.
        (
            "xlsx_inline_cell.xlsx",
            xlsx_of(&format!("<row>{}</row>", cell(&"A".repeat(over_token))), ""),
            Some(Cap::XmlTokenBytes),
        ),
        // Millions of empty-looking rows in a few kilobytes.
        (
            "xlsx_rows.xlsx",
            xlsx_of(
                &format!(
                    "<row>{}</row>{}",
                    cell("phone"),
                    r#"<row><c><v>1</v></c></row>"#.repeat(super::limits::MAX_SHEET_ROWS as usize)
                ),
                "",
            ),
            Some(Cap::SheetRows),
        ),
        // A shared string table claiming four billion strings (calamine reserved room for them).
        (
            "xlsx_unique_count.xlsx",
            zip_of(&[
                ("xl/workbook.xml", WORKBOOK.as_bytes()),
                ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
                (
                    "xl/sharedStrings.xml",
                    br#"<sst uniqueCount="4000000000" count="4000000000"><si><t>x</t></si></sst>"#,
                ),
                (
                    "xl/worksheets/sheet1.xml",
                    br#"<worksheet><sheetData><row><c t="s"><v>0</v></c></row></sheetData></worksheet>"#,
                ),
            ]),
            // Harmless here: the reader holds the one string there is.
            None,
        ),
        // A row repeated a billion times.
        (
            "ods_repeated_rows.ods",
            ods_of(&ods_row(r#"table:number-rows-repeated="1000000000""#, "x")),
            Some(Cap::SheetRows),
        ),
        // One paragraph longer than the token cap.
        (
            "ods_one_cell.ods",
            ods_of(&ods_row("", &"A".repeat(over_token))),
            Some(Cap::XmlTokenBytes),
        ),
        // Two cells at opposite corners of the grid: calamine would lay out 16,777,216 cells.
        (
            "xls_corners.xls",
            super::tests::xls_with_score_at(65_535, 255),
            Some(Cap::XlsCells),
        ),
    ]
}

#[test]
fn each_bomb_is_stopped_by_its_cap() {
    for (name, bytes, cap) in bombs() {
        assert_eq!(cap_of(read_all(&bytes, &Limits::default())), cap, "{name}");
    }
}
