//! Telling what an uploaded file is: its format by content, and for text its encoding and CSV
//! delimiter.

use std::io::{Read, Seek, SeekFrom};

use super::limits::Limits;
use super::text::{SAMPLE_BYTES, decode_sample, read_sample};
use super::zip_container::Archive;
use super::{Detected, Format, ReadError, TextEncoding, guarded, ods, ole, xls, xlsx};

const ODS_MIMETYPE: &str = "application/vnd.oasis.opendocument.spreadsheet";

/// The delimiters a CSV file may use, in order of preference when the counts tie.
const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];

/// How many records of the sample decide the delimiter.
const SNIFF_RECORDS: usize = 50;

pub(super) fn detect<R: Read + Seek>(
    reader: &mut R,
    file_name: Option<&str>,
    limits: &Limits,
) -> Result<Detected, ReadError> {
    reader.seek(SeekFrom::Start(0))?;
    let sample = read_sample(reader, SAMPLE_BYTES)?;
    if sample.is_empty() {
        return Err(ReadError::Empty);
    }
    if sample.starts_with(b"PK\x03\x04") || sample.starts_with(b"PK\x05\x06") {
        let format = zip_format(reader, &sample, limits)?;
        return spreadsheet(reader, format, limits);
    }
    if ole::is_compound_file(&sample) {
        return spreadsheet(reader, Format::Xls, limits);
    }
    if let Some(what) = known_binary(&sample) {
        return Err(ReadError::Unsupported(what.to_owned()));
    }

    let encoding = sniff_encoding(&sample);
    let text = decode_sample(&sample, encoding);
    // A full sample means the file goes on: its last line may be cut short.
    let truncated = sample.len() >= SAMPLE_BYTES;
    if text.trim().is_empty() && !truncated {
        return Err(ReadError::Empty);
    }
    if looks_binary(&text) {
        return Err(ReadError::Unsupported(
            "binary data that is neither a spreadsheet nor a text file; upload CSV, XLSX, XLS, \
             ODS or vCard"
                .to_owned(),
        ));
    }
    if let Some(what) = markup(&text) {
        return Err(ReadError::Unsupported(what.to_owned()));
    }
    let name = file_name.unwrap_or_default().to_ascii_lowercase();
    let start = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let vcard_named = name.ends_with(".vcf") || name.ends_with(".vcard");
    if starts_with_ignore_case(start, "BEGIN:VCARD")
        || (vcard_named && text.to_ascii_uppercase().contains("BEGIN:VCARD"))
    {
        return Ok(Detected {
            format: Format::Vcard,
            encoding: Some(encoding),
            delimiter: None,
            sheets: Vec::new(),
        });
    }
    let prefer_tab = name.ends_with(".tsv") || name.ends_with(".tab");
    Ok(Detected {
        format: Format::Csv,
        encoding: Some(encoding),
        delimiter: Some(sniff_delimiter(&text, truncated, prefer_tab)),
        sheets: Vec::new(),
    })
}

fn spreadsheet<R: Read + Seek>(
    reader: &mut R,
    format: Format,
    limits: &Limits,
) -> Result<Detected, ReadError> {
    reader.seek(SeekFrom::Start(0))?;
    let sheets = match format {
        Format::Xlsx => guarded(|| xlsx::list_sheets(&mut *reader, limits))?,
        Format::Ods => guarded(|| ods::list_sheets(&mut *reader, limits))?,
        Format::Xls => xls::list_sheets(&mut *reader, limits)?,
        Format::Csv | Format::Vcard => Vec::new(),
    };
    if sheets.is_empty() {
        return Err(ReadError::NoSheets);
    }
    Ok(Detected {
        format,
        encoding: None,
        delimiter: None,
        sheets,
    })
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Formats people upload by mistake, named so the operator knows what to do instead.
fn known_binary(sample: &[u8]) -> Option<&'static str> {
    const KNOWN: &[(&[u8], &str)] = &[
        (
            b"%PDF",
            "a PDF document; export the contacts as CSV or XLSX",
        ),
        (b"\x89PNG", "an image"),
        (b"\xFF\xD8\xFF", "an image"),
        (b"GIF8", "an image"),
        (b"\x1F\x8B", "a gzip archive; upload the file inside it"),
        (b"Rar!", "a RAR archive; upload the file inside it"),
        (b"7z\xBC\xAF", "a 7-Zip archive; upload the file inside it"),
        (b"{\\rtf", "an RTF document; save it as CSV"),
    ];
    KNOWN
        .iter()
        .find(|(magic, _)| sample.starts_with(magic))
        .map(|(_, what)| *what)
}

/// Web applications often export an HTML table under an `.xls` name; Excel opens it, we do not.
fn markup(text: &str) -> Option<&'static str> {
    let start = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if !start.starts_with('<') {
        return None;
    }
    let lower = start.to_ascii_lowercase();
    if lower.contains("urn:schemas-microsoft-com:office:spreadsheet") {
        Some("an Excel 2003 XML spreadsheet; open it in a spreadsheet program and save it as XLSX")
    } else if lower.contains("<html") || lower.contains("<table") || lower.contains("<!doctype") {
        Some(
            "an HTML page (some systems export these under an .xls name); open it in a \
             spreadsheet program and save it as XLSX or CSV",
        )
    } else if lower.starts_with("<?xml") {
        Some("an XML document; export the contacts as CSV or XLSX")
    } else {
        None
    }
}

/// Text has few control characters; binary data that happens to decode has many.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut suspicious = 0usize;
    for c in text.chars() {
        total += 1;
        match c {
            '\0' => return true,
            '\t' | '\n' | '\r' | '\x0c' => {}
            '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffd}' => suspicious += 1,
            _ => {}
        }
    }
    suspicious > 1 && suspicious * 20 > total
}

/// A byte order mark wins; then UTF-16 given away by zero bytes in every other position (the
/// high bytes of ASCII characters); then UTF-8 if the sample is valid UTF-8 (a character cut off
/// at the end of the sample does not count against it); Windows-1252 otherwise.
pub(super) fn sniff_encoding(sample: &[u8]) -> TextEncoding {
    if sample.starts_with(b"\xEF\xBB\xBF") {
        return TextEncoding::Utf8Bom;
    }
    if sample.starts_with(b"\xFF\xFE") {
        return TextEncoding::Utf16Le;
    }
    if sample.starts_with(b"\xFE\xFF") {
        return TextEncoding::Utf16Be;
    }
    let pairs = sample.len() / 2;
    if pairs > 0 {
        let zeros_at = |parity: usize| {
            sample
                .iter()
                .skip(parity)
                .step_by(2)
                .take(pairs)
                .filter(|byte| **byte == 0)
                .count()
        };
        let (even, odd) = (zeros_at(0), zeros_at(1));
        // At least 30% zeros on one side, under 5% on the other.
        if odd * 10 >= pairs * 3 && even * 20 < pairs {
            return TextEncoding::Utf16Le;
        }
        if even * 10 >= pairs * 3 && odd * 20 < pairs {
            return TextEncoding::Utf16Be;
        }
    }
    match std::str::from_utf8(sample) {
        Ok(_) => TextEncoding::Utf8,
        // `error_len() == None`: the sample ends part-way through a valid character.
        Err(error) if error.error_len().is_none() && sample.len() - error.valid_up_to() < 4 => {
            TextEncoding::Utf8
        }
        Err(_) => TextEncoding::Windows1252,
    }
}

/// Picks the delimiter that splits the sample's records most consistently: for each candidate,
/// its count outside quotes per record, the most common non-zero count, and the share of records
/// that have exactly that many. Highest share wins, then the higher count, then the order of
/// [`DELIMITERS`] (tab first for a `.tsv` file). No candidate at all: a single-column file, `,`.
pub(super) fn sniff_delimiter(text: &str, truncated: bool, prefer_tab: bool) -> char {
    let mut order = DELIMITERS;
    if prefer_tab {
        order = ['\t', ',', ';', '|'];
    }
    let mut best: Option<(f64, usize, char)> = None;
    for delimiter in order {
        let counts = delimiter_counts(text, delimiter, truncated);
        let Some((mode, share)) = mode_and_share(&counts) else {
            continue;
        };
        let better = match best {
            None => true,
            Some((best_share, best_mode, _)) => {
                share > best_share || (share == best_share && mode > best_mode)
            }
        };
        if better {
            best = Some((share, mode, delimiter));
        }
    }
    best.map_or(',', |(_, _, delimiter)| delimiter)
}

fn mode_and_share(counts: &[usize]) -> Option<(usize, f64)> {
    let mut tally: Vec<(usize, usize)> = Vec::new();
    for &count in counts.iter().filter(|count| **count > 0) {
        match tally.iter_mut().find(|(value, _)| *value == count) {
            Some((_, times)) => *times += 1,
            None => tally.push((count, 1)),
        }
    }
    let (mode, times) = tally
        .into_iter()
        .max_by_key(|&(value, times)| (times, value))?;
    Some((mode, times as f64 / counts.len().max(1) as f64))
}

/// The number of `delimiter`s outside quoted fields in each of the sample's first records, read
/// the way the CSV parser will read them (a quote opens a quoted field only at a field's start).
fn delimiter_counts(text: &str, delimiter: char, truncated: bool) -> Vec<usize> {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut records = Vec::new();
    let mut state = State::FieldStart;
    let mut count = 0;
    let mut has_content = false;
    for c in text.chars() {
        match state {
            State::Quoted => {
                if c == '"' {
                    state = State::QuoteInQuoted;
                }
                continue;
            }
            State::QuoteInQuoted if c == '"' => {
                state = State::Quoted;
                continue;
            }
            _ => {}
        }
        if c == '\n' || c == '\r' {
            if has_content {
                records.push(count);
                if records.len() >= SNIFF_RECORDS {
                    return records;
                }
            }
            count = 0;
            has_content = false;
            state = State::FieldStart;
            continue;
        }
        has_content = true;
        if c == delimiter {
            count += 1;
            state = State::FieldStart;
        } else if c == '"' && state == State::FieldStart {
            state = State::Quoted;
        } else {
            state = State::Unquoted;
        }
    }
    // The sample's last record is whole only if the sample is the whole file.
    if has_content && (!truncated || records.is_empty()) {
        records.push(count);
    }
    records
}

/// Which spreadsheet a ZIP archive holds, by its entries (and the ODF `mimetype` entry, which
/// the OpenDocument standard stores first and uncompressed).
fn zip_format<R: Read + Seek>(
    reader: &mut R,
    sample: &[u8],
    limits: &Limits,
) -> Result<Format, ReadError> {
    if let Some(mimetype) = odf_mimetype(sample) {
        if mimetype.trim() == ODS_MIMETYPE {
            return Ok(Format::Ods);
        }
        if mimetype.starts_with("application/vnd.oasis.opendocument.") {
            return Err(ReadError::Unsupported(format!(
                "an OpenDocument file of type {:?}; only spreadsheets (ODS) can be imported",
                mimetype.trim()
            )));
        }
    }
    let names = match Archive::open(&mut *reader, limits) {
        Ok(archive) => archive.names(),
        Err(error @ ReadError::OverCap { .. }) => return Err(error),
        Err(_) => {
            return Err(ReadError::Unsupported(
                "a damaged ZIP archive (an XLSX or ODS file that was cut short?)".to_owned(),
            ));
        }
    };
    let has = |wanted: &str| {
        names
            .iter()
            .any(|name| name.replace('\\', "/").eq_ignore_ascii_case(wanted))
    };
    if has("xl/workbook.xml") {
        Ok(Format::Xlsx)
    } else if has("xl/workbook.bin") {
        Err(ReadError::Unsupported(
            "an Excel binary workbook (XLSB); save it as XLSX".to_owned(),
        ))
    } else if has("mimetype") && has("content.xml") {
        // The mimetype entry was not where the standard puts it; the ODS reader checks it.
        Ok(Format::Ods)
    } else if has("word/document.xml") {
        Err(ReadError::Unsupported("a Word document".to_owned()))
    } else if has("ppt/presentation.xml") {
        Err(ReadError::Unsupported(
            "a PowerPoint presentation".to_owned(),
        ))
    } else {
        Err(ReadError::Unsupported(
            "a ZIP archive that is not a spreadsheet; upload the CSV or XLSX file itself"
                .to_owned(),
        ))
    }
}

fn le16(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(usize::from(u16::from_le_bytes(b)))
}

fn le32(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(b)))
}

/// The content of the first entry of a ZIP archive if it is an uncompressed `mimetype`.
fn odf_mimetype(sample: &[u8]) -> Option<String> {
    let method = le16(sample, 8)?;
    let size = usize::try_from(le32(sample, 18)?).ok()?;
    let name_len = le16(sample, 26)?;
    let extra_len = le16(sample, 28)?;
    let name = sample.get(30..30 + name_len)?;
    if name != b"mimetype" || method != 0 || size > 200 {
        return None;
    }
    let start = 30 + name_len + extra_len;
    let content = sample.get(start..start + size)?;
    Some(String::from_utf8_lossy(content).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_by_bom_zero_bytes_and_validity() {
        assert_eq!(sniff_encoding(b"\xEF\xBB\xBFa,b"), TextEncoding::Utf8Bom);
        assert_eq!(sniff_encoding(b"\xFF\xFEa\x00"), TextEncoding::Utf16Le);
        assert_eq!(sniff_encoding(b"\xFE\xFF\x00a"), TextEncoding::Utf16Be);
        assert_eq!(sniff_encoding(b"a\x00,\x00b\x00"), TextEncoding::Utf16Le);
        assert_eq!(sniff_encoding(b"\x00a\x00,\x00b"), TextEncoding::Utf16Be);
        assert_eq!(sniff_encoding("Zoë,Müller".as_bytes()), TextEncoding::Utf8);
        assert_eq!(
            sniff_encoding(b"Zo\xEB,M\xFCller"),
            TextEncoding::Windows1252
        );
        // Cut in the middle of "ë": still UTF-8.
        assert_eq!(sniff_encoding(&"Zoë".as_bytes()[..3]), TextEncoding::Utf8);
    }

    #[test]
    fn delimiters() {
        assert_eq!(sniff_delimiter("a,b,c\n1,2,3\n", false, false), ',');
        assert_eq!(sniff_delimiter("a;b;c\n1;2,5;3\n", false, false), ';');
        assert_eq!(sniff_delimiter("a\tb\n1\t2\n", false, false), '\t');
        assert_eq!(sniff_delimiter("a|b\n1|2\n", false, false), '|');
        assert_eq!(
            sniff_delimiter("+14155552671\n+14155552672\n", false, false),
            ','
        );
        // Delimiters inside quotes, even across lines, do not count.
        let quoted = "name;note\n\"Smith, J\";\"a, b,\nc\"\n\"Doe, K\";x\n";
        assert_eq!(sniff_delimiter(quoted, false, false), ';');
        // A tie goes to the comma, unless the file is named .tsv.
        assert_eq!(sniff_delimiter("a,b\tc\n", false, false), ',');
        assert_eq!(sniff_delimiter("a,b\tc\n", false, true), '\t');
    }

    #[test]
    fn a_cut_off_last_record_does_not_vote() {
        let text = "a;b;c\n1;2;3\n4;5,6,7,8,9";
        assert_eq!(delimiter_counts(text, ';', true), [2, 2]);
        assert_eq!(delimiter_counts(text, ';', false), [2, 2, 1]);
    }

    #[test]
    fn binary_looking_text() {
        assert!(looks_binary("a\0b"));
        assert!(looks_binary("\u{1}\u{2}\u{3}abcdefghij"));
        assert!(!looks_binary("name,phone\r\nAda,+4915112345678\r\n\u{1a}"));
    }
}
