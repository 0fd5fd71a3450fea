//! Detecting and opening whole files of every format, with fixtures made here.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use super::*;

fn detect_bytes(bytes: &[u8], name: Option<&str>) -> Result<Detected, ReadError> {
    detect(&mut Cursor::new(bytes.to_vec()), name)
}

fn open_bytes(bytes: &[u8], sheet: Option<&str>) -> Table {
    let detected = detect_bytes(bytes, None).unwrap();
    open(Cursor::new(bytes.to_vec()), &detected, sheet).unwrap()
}

fn texts(table: Table) -> Vec<(u64, Vec<String>)> {
    table
        .rows
        .map(|row| {
            let row = row.unwrap();
            (
                row.number,
                row.cells.into_iter().map(|cell| cell.text).collect(),
            )
        })
        .collect()
}

fn row(number: u64, cells: &[&str]) -> (u64, Vec<String>) {
    (
        number,
        cells.iter().map(|cell| (*cell).to_owned()).collect(),
    )
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let units = bom.then_some(0xFEFF).into_iter().chain(text.encode_utf16());
    for unit in units {
        if big_endian {
            bytes.extend_from_slice(&unit.to_be_bytes());
        } else {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
    }
    bytes
}

const CONTACTS: &str =
    "Name,Phone,City\r\nZoë Müller,+4915112345678,Köln\r\nJosé,+34600123456,\r\n";

fn assert_contacts(bytes: &[u8], encoding: TextEncoding, delimiter: char) {
    let detected = detect_bytes(bytes, Some("contacts.csv")).unwrap();
    assert_eq!(
        detected,
        Detected {
            format: Format::Csv,
            encoding: Some(encoding),
            delimiter: Some(delimiter),
            sheets: vec![],
        }
    );
    let table = open(Cursor::new(bytes.to_vec()), &detected, None).unwrap();
    assert!(table.has_header_row);
    assert_eq!(table.headers, ["Name", "Phone", "City"]);
    assert_eq!(
        texts(table),
        [
            row(2, &["Zoë Müller", "+4915112345678", "Köln"]),
            row(3, &["José", "+34600123456", ""]),
        ]
    );
}

#[test]
fn csv_in_utf8_with_and_without_bom() {
    assert_contacts(CONTACTS.as_bytes(), TextEncoding::Utf8, ',');
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), CONTACTS.as_bytes()].concat();
    assert_contacts(&with_bom, TextEncoding::Utf8Bom, ',');
}

#[test]
fn csv_in_utf16_both_byte_orders_with_and_without_bom() {
    for big_endian in [false, true] {
        for bom in [true, false] {
            let encoding = if big_endian {
                TextEncoding::Utf16Be
            } else {
                TextEncoding::Utf16Le
            };
            assert_contacts(&utf16(CONTACTS, big_endian, bom), encoding, ',');
        }
    }
    // Excel's "Unicode text" is UTF-16 LE with a BOM and tabs.
    let tabbed = CONTACTS.replace(',', "\t");
    assert_contacts(&utf16(&tabbed, false, true), TextEncoding::Utf16Le, '\t');
}

#[test]
fn csv_in_windows_1252() {
    let bytes = b"Name;Note\r\nM\xFCller;Jos\xE9 paid \x80 5\r\n";
    let table = open_bytes(bytes, None);
    assert_eq!(table.headers, ["Name", "Note"]);
    assert_eq!(texts(table), [row(2, &["Müller", "José paid € 5"])]);
    let detected = detect_bytes(bytes, None).unwrap();
    assert_eq!(detected.encoding, Some(TextEncoding::Windows1252));
    assert_eq!(detected.delimiter, Some(';'));
}

#[test]
fn each_delimiter() {
    for delimiter in [',', ';', '\t', '|'] {
        let text = format!("a{delimiter}b{delimiter}c\n1{delimiter}2{delimiter}3\n");
        let detected = detect_bytes(text.as_bytes(), None).unwrap();
        assert_eq!(detected.delimiter, Some(delimiter));
        let table = open(Cursor::new(text.into_bytes()), &detected, None).unwrap();
        assert_eq!(table.headers, ["a", "b", "c"]);
        assert_eq!(texts(table), [row(2, &["1", "2", "3"])]);
    }
}

#[test]
fn quoted_fields_with_line_breaks_delimiters_and_quotes() {
    let text = "Name;Note;Phone\n\"Smith; John\";\"said \"\"hi\"\"\nthen left\";+14155552671\n\
                \"Doe\";;+14155552672\n";
    let table = open_bytes(text.as_bytes(), None);
    assert_eq!(table.headers, ["Name", "Note", "Phone"]);
    assert_eq!(
        texts(table),
        [
            row(
                2,
                &["Smith; John", "said \"hi\"\nthen left", "+14155552671"]
            ),
            row(3, &["Doe", "", "+14155552672"]),
        ]
    );
}

#[test]
fn a_headerless_phone_list() {
    let text = " +1 (415) 555-2671 \n\n+14155552672\n";
    let table = open_bytes(text.as_bytes(), None);
    assert!(!table.has_header_row);
    assert_eq!(table.headers, ["Column 1"]);
    assert_eq!(
        texts(table),
        [row(1, &["+1 (415) 555-2671"]), row(3, &["+14155552672"])]
    );
}

#[test]
fn the_operator_overrides_the_header_guess() {
    let bytes = b"Ada,Lovelace\nGrace,Hopper\n";
    let detected = detect_bytes(bytes, None).unwrap();
    let guessed = open(Cursor::new(bytes.to_vec()), &detected, None).unwrap();
    assert_eq!(guessed.headers, ["Ada", "Lovelace"]);
    let told = open_with_header(
        Cursor::new(bytes.to_vec()),
        &detected,
        None,
        HeaderRow::Absent,
    )
    .unwrap();
    assert_eq!(told.headers, ["Column 1", "Column 2"]);
    assert_eq!(
        texts(told),
        [row(1, &["Ada", "Lovelace"]), row(2, &["Grace", "Hopper"])]
    );
    let phones = b"+14155552671\n+14155552672\n";
    let detected = detect_bytes(phones, None).unwrap();
    let told = open_with_header(
        Cursor::new(phones.to_vec()),
        &detected,
        None,
        HeaderRow::Present,
    )
    .unwrap();
    assert_eq!(told.headers, ["+14155552671"]);
    assert_eq!(texts(told), [row(2, &["+14155552672"])]);
}

#[test]
fn reads_from_a_file_on_disk() {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&xlsx_fixture()).unwrap();
    let detected = detect(&mut file, Some("upload.xlsx")).unwrap();
    let table = open(file, &detected, None).unwrap();
    assert_eq!(table.rows.count(), 2);
}

#[test]
fn header_cells_blank_or_repeated() {
    let table = open_bytes(b"Phone,,phone\n1,2,3\n", None);
    assert_eq!(table.headers, ["Phone", "Column 2", "phone (2)"]);
}

#[test]
fn an_over_long_record_names_its_row() {
    let mut text = b"Name,Note\nAda,short\n".to_vec();
    text.extend_from_slice(b"Bob,");
    text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES));
    text.extend_from_slice(b"\nCy,short\n");
    let table = open_bytes(&text, None);
    let results: Vec<_> = table.rows.collect();
    assert_eq!(results.len(), 3);
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.row(), Some(3));
    assert_eq!(
        error.to_string(),
        format!("row 3: the row is longer than {MAX_RECORD_BYTES} bytes")
    );
    assert_eq!(results[2].as_ref().unwrap().number, 4);
}

/// A CSV of `rows` generated as it is read, so the test itself holds none of it.
struct GeneratedCsv {
    rows: u64,
    next_row: u64,
    pending: Vec<u8>,
}

impl Read for GeneratedCsv {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() && self.next_row <= self.rows {
            self.pending = if self.next_row == 0 {
                b"phone,name\n".to_vec()
            } else {
                format!("+1415{:07},Name {}\n", self.next_row, self.next_row).into_bytes()
            };
            self.next_row += 1;
        }
        let count = self.pending.len().min(buf.len());
        buf[..count].copy_from_slice(&self.pending[..count]);
        self.pending.drain(..count);
        Ok(count)
    }
}

impl Seek for GeneratedCsv {
    fn seek(&mut self, position: SeekFrom) -> std::io::Result<u64> {
        match position {
            SeekFrom::Start(0) => {
                self.next_row = 0;
                self.pending.clear();
                Ok(0)
            }
            _ => Err(std::io::Error::other("only rewinding is supported")),
        }
    }
}

#[test]
fn a_large_csv_streams() {
    let rows = 200_000;
    let mut source = GeneratedCsv {
        rows,
        next_row: 0,
        pending: Vec::new(),
    };
    let detected = detect(&mut source, None).unwrap();
    let table = open(source, &detected, None).unwrap();
    let mut count = 0;
    let mut last = 0;
    for row in table.rows {
        let row = row.unwrap();
        count += 1;
        last = row.number;
    }
    assert_eq!((count, last), (rows, rows + 1));
}

fn xlsx_fixture() -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format as CellFormat, Workbook};
    let mut workbook = Workbook::new();
    let date = CellFormat::new().set_num_format("yyyy-mm-dd");
    let sheet = workbook.add_worksheet();
    sheet.set_name("Customers").unwrap();
    for (column, header) in ["Name", "Phone", "Joined", "VIP", "Score"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    sheet.write_string(1, 0, "  Ada Lovelace ").unwrap();
    sheet.write_number(1, 1, 14155552671.0).unwrap();
    let joined = ExcelDateTime::from_ymd(2024, 3, 1).unwrap();
    sheet
        .write_datetime_with_format(1, 2, &joined, &date)
        .unwrap();
    sheet.write_boolean(1, 3, true).unwrap();
    sheet.write_number(1, 4, 0.1 + 0.2).unwrap();
    // Row 3 is left empty; row 4 is short.
    sheet.write_string(3, 0, "Bob").unwrap();
    sheet.write_string(3, 1, "+1 415 555 2672").unwrap();
    let second = workbook.add_worksheet();
    second.set_name("VIP list").unwrap();
    second.write_number(0, 0, 4915112345678.0).unwrap();
    second.write_string(0, 1, "Zoë").unwrap();
    workbook.save_to_buffer().unwrap()
}

#[test]
fn xlsx_first_sheet_numbers_dates_and_booleans() {
    let bytes = xlsx_fixture();
    let detected = detect_bytes(&bytes, Some("export.xlsx")).unwrap();
    assert_eq!(detected.format, Format::Xlsx);
    assert_eq!(detected.sheets, ["Customers", "VIP list"]);
    let table = open(Cursor::new(bytes), &detected, None).unwrap();
    assert!(table.has_header_row);
    assert_eq!(table.headers, ["Name", "Phone", "Joined", "VIP", "Score"]);
    let rows: Vec<SourceRow> = table.rows.map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let ada = &rows[0];
    assert_eq!(ada.number, 2);
    let cells: Vec<(&str, bool)> = ada
        .cells
        .iter()
        .map(|cell| (cell.text.as_str(), cell.numeric))
        .collect();
    assert_eq!(
        cells,
        [
            ("Ada Lovelace", false),
            ("14155552671", true),
            ("2024-03-01", false),
            ("true", false),
            ("0.3", true),
        ]
    );
    let bob = &rows[1];
    assert_eq!(bob.number, 4);
    assert_eq!(bob.cells.len(), 5);
    assert_eq!(bob.cells[1].text, "+1 415 555 2672");
}

#[test]
fn xlsx_sheet_chosen_by_name() {
    let bytes = xlsx_fixture();
    let detected = detect_bytes(&bytes, None).unwrap();
    let table = open(Cursor::new(bytes), &detected, Some("VIP list")).unwrap();
    // The first row holds a phone number: no header row.
    assert!(!table.has_header_row);
    assert_eq!(table.headers, ["Column 1", "Column 2"]);
    assert_eq!(texts(table), [row(1, &["4915112345678", "Zoë"])]);
}

#[test]
fn unknown_sheet_lists_the_sheets() {
    let bytes = xlsx_fixture();
    let detected = detect_bytes(&bytes, None).unwrap();
    let error = open(Cursor::new(bytes), &detected, Some("Leads")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "there is no sheet named \"Leads\"; the workbook has \"Customers\", \"VIP list\""
    );
}

#[test]
fn dropping_an_xlsx_table_early_stops_its_reader() {
    use rust_xlsxwriter::Workbook;
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    for row in 0..2_000u32 {
        sheet.write_number(row, 0, f64::from(row)).unwrap();
    }
    let bytes = workbook.save_to_buffer().unwrap();
    let detected = detect_bytes(&bytes, None).unwrap();
    let mut table = open(Cursor::new(bytes), &detected, None).unwrap();
    assert!(table.rows.next().is_some());
    // The reader thread blocks on its full channel, then ends once the receiver is gone.
    drop(table);
}

/// A minimal BIFF8 workbook in a compound file, written by hand (no crate writes XLS): a hidden
/// worksheet, then "Customers", then a chart sheet.
pub(super) fn xls_fixture() -> Vec<u8> {
    fn record(stream: &mut Vec<u8>, kind: u16, data: &[u8]) {
        stream.extend_from_slice(&kind.to_le_bytes());
        stream.extend_from_slice(&(data.len() as u16).to_le_bytes());
        stream.extend_from_slice(data);
    }
    fn bof(stream: &mut Vec<u8>, kind: u16) {
        let mut data = vec![0x00, 0x06];
        data.extend_from_slice(&kind.to_le_bytes());
        data.extend_from_slice(&[0; 12]);
        record(stream, 0x0809, &data);
    }
    fn position(row: u16, column: u16) -> Vec<u8> {
        [row.to_le_bytes(), column.to_le_bytes(), 0u16.to_le_bytes()].concat()
    }
    fn label(stream: &mut Vec<u8>, row: u16, column: u16, latin1: &[u8]) {
        let mut data = position(row, column);
        data.extend_from_slice(&(latin1.len() as u16).to_le_bytes());
        data.push(0); // one byte per character
        data.extend_from_slice(latin1);
        record(stream, 0x0204, &data);
    }
    fn number(stream: &mut Vec<u8>, row: u16, column: u16, value: f64) {
        let mut data = position(row, column);
        data.extend_from_slice(&value.to_le_bytes());
        record(stream, 0x0203, &data);
    }

    let sheets: [(&[u8], u8, u8); 3] = [
        (b"Hidden sheet", 1, 0),
        (b"Customers", 0, 0),
        (b"Chart", 0, 2),
    ];
    let globals_len = 20
        + sheets
            .iter()
            .map(|(name, _, _)| 4 + 8 + name.len())
            .sum::<usize>()
        + 4;
    let mut substreams = Vec::new();
    let mut positions = Vec::new();
    // The hidden sheet.
    positions.push(globals_len + substreams.len());
    bof(&mut substreams, 0x0010);
    label(&mut substreams, 0, 0, b"secret");
    record(&mut substreams, 0x000A, &[]);
    // Customers.
    positions.push(globals_len + substreams.len());
    bof(&mut substreams, 0x0010);
    label(&mut substreams, 0, 0, b"Name");
    label(&mut substreams, 0, 1, b"Phone");
    label(&mut substreams, 0, 2, b"VIP");
    label(&mut substreams, 1, 0, b"Zo\xEB");
    number(&mut substreams, 1, 1, 14155552671.0);
    record(
        &mut substreams,
        0x0205,
        &[position(1, 2), vec![1, 0]].concat(),
    );
    label(&mut substreams, 3, 0, b"Bob");
    number(&mut substreams, 3, 2, 2.5);
    record(&mut substreams, 0x000A, &[]);
    // The chart.
    positions.push(globals_len + substreams.len());
    bof(&mut substreams, 0x0020);
    record(&mut substreams, 0x000A, &[]);

    let mut stream = Vec::new();
    bof(&mut stream, 0x0005);
    for ((name, hidden, kind), position) in sheets.iter().zip(&positions) {
        let mut data = (*position as u32).to_le_bytes().to_vec();
        data.extend_from_slice(&[*hidden, *kind, name.len() as u8, 0]);
        data.extend_from_slice(name);
        record(&mut stream, 0x0085, &data);
    }
    record(&mut stream, 0x000A, &[]);
    assert_eq!(stream.len(), globals_len);
    stream.extend_from_slice(&substreams);
    // Streams under 4096 bytes would live in the mini stream; padding keeps this one simple.
    stream.resize(4096, 0);

    // Compound file: header, FAT in sector 0, directory in sector 1, the stream from sector 2.
    const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
    const FREE: u32 = 0xFFFF_FFFF;
    let stream_sectors = stream.len() / 512;
    let mut file = Vec::new();
    file.extend_from_slice(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1");
    file.extend_from_slice(&[0; 16]);
    for value in [0x003Eu16, 0x0003, 0xFFFE, 0x0009, 0x0006, 0, 0, 0] {
        file.extend_from_slice(&value.to_le_bytes());
    }
    for value in [0u32, 1, 1, 0, 4096, END_OF_CHAIN, 0, END_OF_CHAIN, 0, 0] {
        file.extend_from_slice(&value.to_le_bytes());
    }
    file.resize(512, 0xFF);
    assert_eq!(file.len(), 512);
    let mut fat = vec![0xFFFF_FFFDu32, END_OF_CHAIN];
    for sector in 0..stream_sectors {
        let next = 2 + sector as u32 + 1;
        fat.push(if sector + 1 == stream_sectors {
            END_OF_CHAIN
        } else {
            next
        });
    }
    fat.resize(128, FREE);
    for entry in fat {
        file.extend_from_slice(&entry.to_le_bytes());
    }
    let directory_entry = |name: &str, kind: u8, child: u32, start: u32, size: u32| {
        let mut entry = vec![0u8; 128];
        let name: Vec<u8> = name
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        entry[..name.len()].copy_from_slice(&name);
        entry[64..66].copy_from_slice(&(name.len() as u16).to_le_bytes());
        entry[66] = kind;
        entry[67] = 1;
        entry[68..72].copy_from_slice(&FREE.to_le_bytes());
        entry[72..76].copy_from_slice(&FREE.to_le_bytes());
        entry[76..80].copy_from_slice(&child.to_le_bytes());
        entry[116..120].copy_from_slice(&start.to_le_bytes());
        entry[120..124].copy_from_slice(&size.to_le_bytes());
        entry
    };
    file.extend(directory_entry("Root Entry", 5, 1, END_OF_CHAIN, 0));
    file.extend(directory_entry("Workbook", 2, FREE, 2, stream.len() as u32));
    file.extend([0u8; 256]);
    file.extend_from_slice(&stream);
    file
}

#[test]
fn xls() {
    let bytes = xls_fixture();
    let detected = detect_bytes(&bytes, Some("old.xls")).unwrap();
    assert_eq!(detected.format, Format::Xls);
    // The chart sheet is left out; the hidden worksheet is listed but not opened by default.
    assert_eq!(detected.sheets, ["Hidden sheet", "Customers"]);
    let table = open(Cursor::new(bytes.clone()), &detected, None).unwrap();
    assert_eq!(table.headers, ["Name", "Phone", "VIP"]);
    let rows: Vec<SourceRow> = table.rows.map(Result::unwrap).collect();
    let cells = |row: &SourceRow| -> Vec<(String, bool)> {
        row.cells
            .iter()
            .map(|cell| (cell.text.clone(), cell.numeric))
            .collect()
    };
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].number, 2);
    assert_eq!(
        cells(&rows[0]),
        [
            ("Zoë".to_owned(), false),
            ("14155552671".to_owned(), true),
            ("true".to_owned(), false)
        ]
    );
    assert_eq!(rows[1].number, 4);
    assert_eq!(
        cells(&rows[1]),
        [
            ("Bob".to_owned(), false),
            (String::new(), false),
            ("2.5".to_owned(), true)
        ]
    );
    let hidden = open(Cursor::new(bytes), &detected, Some("Hidden sheet")).unwrap();
    assert_eq!(hidden.headers, ["secret"]);
}

#[test]
fn an_xls_with_a_looping_sector_chain_is_refused() {
    // calamine 0.38 follows the loop allocating until the process dies; found by mutation.
    let mut bytes = xls_fixture();
    // The allocation table is sector 0 (file offset 512); entry 1 is the directory's chain.
    bytes[512 + 4..512 + 8].copy_from_slice(&1u32.to_le_bytes());
    let error = detect_bytes(&bytes, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the spreadsheet could not be read: the XLS file is damaged (sector chain loops)"
    );
    // Whatever the format it is forced to, the file is an error, not a hang.
    for format in [Format::Xls, Format::Xlsx, Format::Ods] {
        let detected = Detected {
            format,
            encoding: None,
            delimiter: None,
            sheets: vec![],
        };
        assert!(open(Cursor::new(bytes.clone()), &detected, None).is_err());
    }
}

/// The fixture with Bob's score (row 4, column C) moved to another cell.
pub(super) fn xls_with_score_at(row: u16, column: u16) -> Vec<u8> {
    let mut bytes = xls_fixture();
    let bob_score = [
        [0x03, 0x02, 14, 0, 3, 0, 2, 0, 0, 0].as_slice(),
        &2.5f64.to_le_bytes(),
    ]
    .concat();
    let at = bytes
        .windows(bob_score.len())
        .position(|window| window == bob_score)
        .unwrap();
    bytes[at + 4..at + 6].copy_from_slice(&row.to_le_bytes());
    bytes[at + 6..at + 8].copy_from_slice(&column.to_le_bytes());
    bytes
}

#[test]
fn an_xls_cell_outside_the_biff8_grid_is_refused() {
    // calamine would lay out a dense grid up to the cell: 65536 × 65536 cells at worst.
    let error = detect_bytes(&xls_with_score_at(3, 300), None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the spreadsheet could not be read: the XLS file is damaged (a cell at row 4, column 301)"
    );
    // The last column of the grid is still fine.
    assert!(detect_bytes(&xls_with_score_at(3, 255), None).is_ok());
}

fn ods_fixture() -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">
 <manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>
 <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>
</manifest:manifest>"#;
    let content = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">
<office:body><office:spreadsheet>
<table:table table:name="Contacts">
<table:table-row>
<table:table-cell office:value-type="string"><text:p>Name</text:p></table:table-cell>
<table:table-cell office:value-type="string"><text:p>Mobile</text:p></table:table-cell>
<table:table-cell office:value-type="string"><text:p>Since</text:p></table:table-cell>
</table:table-row>
<table:table-row>
<table:table-cell office:value-type="string"><text:p>Zoë</text:p></table:table-cell>
<table:table-cell office:value-type="float" office:value="14155552671"><text:p>14155552671</text:p></table:table-cell>
<table:table-cell office:value-type="date" office:date-value="2024-03-01"><text:p>01.03.2024</text:p></table:table-cell>
</table:table-row>
</table:table>
<table:table table:name="Other">
<table:table-row><table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>
</table:table>
</office:spreadsheet></office:body></office:document-content>"#;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("META-INF/manifest.xml", SimpleFileOptions::default())
        .unwrap();
    zip.write_all(manifest.as_bytes()).unwrap();
    zip.start_file("content.xml", SimpleFileOptions::default())
        .unwrap();
    // calamine's ODS reader takes whitespace between a row and its cells for a cell; office
    // suites write none.
    zip.write_all(content.replace('\n', "").as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}

#[test]
fn ods() {
    let bytes = ods_fixture();
    let detected = detect_bytes(&bytes, Some("contacts.ods")).unwrap();
    assert_eq!(detected.format, Format::Ods);
    assert_eq!(detected.sheets, ["Contacts", "Other"]);
    let table = open(Cursor::new(bytes), &detected, None).unwrap();
    assert_eq!(table.headers, ["Name", "Mobile", "Since"]);
    let rows: Vec<SourceRow> = table.rows.map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].number, 2);
    assert_eq!(rows[0].cells[0].text, "Zoë");
    assert_eq!(
        (rows[0].cells[1].text.as_str(), rows[0].cells[1].numeric),
        ("14155552671", true)
    );
    assert_eq!(rows[0].cells[2].text, "2024-03-01");
}

#[test]
fn vcard_detected_and_read() {
    let text = "\u{feff}\r\nbegin:VCARD\r\nVERSION:3.0\r\nN:Hopper;Grace;;;\r\n\
                TEL;TYPE=CELL:+1 555 0199\r\nEND:VCARD\r\n";
    for bytes in [text.as_bytes().to_vec(), utf16(text, false, false)] {
        let detected = detect_bytes(&bytes, None).unwrap();
        assert_eq!(detected.format, Format::Vcard);
        let table = open(Cursor::new(bytes), &detected, None).unwrap();
        assert_eq!(table.headers, VCARD_HEADERS);
        let rows = texts(table);
        assert_eq!(
            rows,
            [row(
                2,
                &[
                    "+1 555 0199",
                    "",
                    "Grace",
                    "Hopper",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    ""
                ]
            )]
        );
    }
}

#[test]
fn file_name_breaks_ties_only() {
    // A tab and a comma once each: the name decides.
    let text = b"a,b\tc\n";
    assert_eq!(
        detect_bytes(text, Some("x.tsv")).unwrap().delimiter,
        Some('\t')
    );
    assert_eq!(
        detect_bytes(text, Some("x.csv")).unwrap().delimiter,
        Some(',')
    );
    // Content wins over the name.
    let csv = b"a;b\n1;2\n";
    assert_eq!(
        detect_bytes(csv, Some("x.xlsx")).unwrap().format,
        Format::Csv
    );
    // A .vcf with a preamble before its first card.
    let vcf = b"exported by something\nBEGIN:VCARD\nFN:A\nEND:VCARD\n";
    assert_eq!(
        detect_bytes(vcf, Some("x.vcf")).unwrap().format,
        Format::Vcard
    );
    assert_eq!(detect_bytes(vcf, None).unwrap().format, Format::Csv);
}

#[test]
fn empty_files() {
    assert!(matches!(detect_bytes(b"", None), Err(ReadError::Empty)));
    assert!(matches!(
        detect_bytes(b" \r\n\r\n", None),
        Err(ReadError::Empty)
    ));
    assert!(matches!(
        detect_bytes(b"\xEF\xBB\xBF", None),
        Err(ReadError::Empty)
    ));
    // A CSV without rows opens to an empty table.
    let detected = Detected {
        format: Format::Csv,
        encoding: None,
        delimiter: None,
        sheets: vec![],
    };
    let table = open(Cursor::new(b"\n\n".to_vec()), &detected, None).unwrap();
    assert!(table.headers.is_empty());
    assert_eq!(table.rows.count(), 0);
}

/// Deterministic noise: no test data to ship, no dependency.
fn noise(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..length)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

fn drain(bytes: &[u8], detected: &Detected) {
    if let Ok(table) = open(Cursor::new(bytes.to_vec()), detected, None) {
        for _ in table.rows.take(10_000) {}
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let error = detect_bytes(&noise(4096, 7), Some("contacts.csv")).unwrap_err();
    assert!(matches!(error, ReadError::Unsupported(_)), "{error}");
    assert!(error.to_string().starts_with("unsupported file: "));
    for prefix in [
        b"PK\x03\x04".as_slice(),
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
        b"%PDF-1.7",
    ] {
        let bytes = [prefix, &noise(2048, 11)].concat();
        assert!(detect_bytes(&bytes, None).is_err());
    }
    // Forced formats on noise, truncated spreadsheets and the like: errors or rows, no panics.
    let xlsx = xlsx_fixture();
    let ods = ods_fixture();
    let inputs = [
        noise(3000, 1),
        noise(70_000, 2),
        xlsx[..xlsx.len() / 2].to_vec(),
        ods[..ods.len() - 10].to_vec(),
        b"BEGIN:VCARD\nTEL;;;=;:\n\xFF\xFE\nEND:VCARD\nEND:VCARD\nBEGIN:VCARD".to_vec(),
        b"\"unterminated,quote\n\r\n\"\"\"".to_vec(),
    ];
    for bytes in &inputs {
        let _ = detect_bytes(bytes, None);
        for format in [
            Format::Csv,
            Format::Xlsx,
            Format::Xls,
            Format::Ods,
            Format::Vcard,
        ] {
            let detected = Detected {
                format,
                encoding: None,
                delimiter: None,
                sheets: vec![],
            };
            drain(bytes, &detected);
        }
    }
}

#[test]
fn other_files_people_upload() {
    let html = b"<html><body><table><tr><td>Phone</td></tr></table></body></html>";
    let error = detect_bytes(html, Some("export.xls")).unwrap_err();
    assert!(error.to_string().contains("HTML"), "{error}");
    let zip_of_csv = {
        use zip::write::SimpleFileOptions;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("contacts.csv", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"phone\n+14155552671\n").unwrap();
        zip.finish().unwrap().into_inner()
    };
    let error = detect_bytes(&zip_of_csv, None).unwrap_err();
    assert!(error.to_string().contains("ZIP archive"), "{error}");
}

#[test]
fn detected_serializes_in_the_stored_form() {
    let detected = Detected {
        format: Format::Csv,
        encoding: Some(TextEncoding::Utf16Le),
        delimiter: Some('\t'),
        sheets: vec![],
    };
    let json = serde_json::to_string(&detected).unwrap();
    assert_eq!(
        json,
        r#"{"format":"csv","encoding":"utf-16le","delimiter":"\t","sheets":[]}"#
    );
    assert_eq!(serde_json::from_str::<Detected>(&json).unwrap(), detected);
}

/// Writes the fuzzers' seed inputs: `ROSTER_FUZZ_SEEDS=fuzz_seeds cargo test -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh the fuzz seeds"]
fn write_fuzz_seeds() {
    let Ok(root) = std::env::var("ROSTER_FUZZ_SEEDS") else {
        return;
    };
    let root = std::path::Path::new(&root);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        assert!(bytes.len() < 8 * 1024, "{target}/{name} is too big");
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    write(
        "csv_sniff",
        "semicolon_quoted.csv",
        b"Name;Phone;Note\n\"Smith; J\";+14155552671;\"a \"\"b\"\"\nc\"\n",
    );
    write(
        "csv_sniff",
        "phones_utf16le.csv",
        &utf16("+14155552671\r\n+14155552672\r\n", false, true),
    );
    write(
        "csv_sniff",
        "windows1252_tab.csv",
        b"Name\tCity\nM\xFCller\tK\xF6ln \x80\n",
    );
    write(
        "vcard_parse",
        "v3_iphone.vcf",
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lovelace;Ada;;;\r\nFN:Ada Lovelace\r\nitem1.TEL:+44 7700 900123\r\n\
          item1.X-ABLabel:_$!<Mobile>!$_\r\nTEL;type=WORK;type=pref:+44 20 7946 0958\r\n\
          CATEGORIES:VIP,Customers\r\nEND:VCARD\r\n",
    );
    write(
        "vcard_parse",
        "v4_uri.vcf",
        b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Alan Turing\r\nTEL;VALUE=uri;TYPE=cell:tel:+1-555-555-0102\r\n\
          EMAIL;PREF=1:a@example.com\r\nEND:VCARD\r\n",
    );
    write(
        "vcard_parse",
        "v21_qp.vcf",
        b"BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen;;;\r\n\
          TEL;CELL;PREF:+49 151 12345678\r\nEND:VCARD\r\n",
    );
    let small_xlsx = {
        use rust_xlsxwriter::Workbook;
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write_string(0, 0, "Phone").unwrap();
        sheet.write_number(1, 0, 14155552671.0).unwrap();
        workbook.save_to_buffer().unwrap()
    };
    write("spreadsheet_open", "small.xlsx", &small_xlsx);
    write("spreadsheet_open", "small.ods", &ods_fixture());
    write("spreadsheet_open", "small.xls", &xls_fixture());
    // The bombs' shapes: larger than the other seeds, as small as they can be and still pass a
    // cap at its default value.
    for (name, bytes, _) in super::cap_tests::bombs() {
        assert!(bytes.len() < 128 * 1024, "{name} is too big");
        let dir = root.join("spreadsheet_open");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("bomb_{name}")), bytes).unwrap();
    }
}

#[test]
fn roster_vcard_exports_read_back_with_gender_and_opt_out() {
    let text = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:+4915112345678\r\nN:;;;;\r\n\
                TEL;VALUE=uri;TYPE=cell:tel:+4915112345678\r\nX-ROSTER-GENDER:female\r\n\
                x-roster-opted-out:true\r\nEND:VCARD\r\n\
                BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Sam Roe\r\nGENDER:M\r\n\
                TEL:+14155550132\r\nEND:VCARD\r\n";
    let bytes = text.as_bytes().to_vec();
    let detected = detect_bytes(&bytes, None).unwrap();
    let table = open(Cursor::new(bytes), &detected, None).unwrap();
    let rows = texts(table);
    // The number in FN is not taken for a name.
    assert_eq!(
        rows[0],
        row(
            2,
            &[
                "+4915112345678",
                "",
                "",
                "",
                "+4915112345678",
                "",
                "",
                "",
                "",
                "female",
                "",
                "true"
            ]
        )
    );
    assert_eq!(
        rows[1],
        row(
            3,
            &[
                "+14155550132",
                "",
                "Sam",
                "Roe",
                "Sam Roe",
                "",
                "",
                "",
                "",
                "male",
                "",
                ""
            ]
        )
    );
}
