//! CSV files, streamed: decoded to UTF-8 on the fly, split by the `csv` crate, with a byte-level
//! tracker in between that numbers rows the way a spreadsheet would and caps record size.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};

use super::columns::{Rows, table_from_rows};
use super::sniff::{sniff_delimiter, sniff_encoding};
use super::text::{DecodingReader, SAMPLE_BYTES, decode_sample, read_sample};
use super::{
    Cell, Format, HeaderRow, MAX_COLUMNS, MAX_RECORD_BYTES, ReadError, SourceRow, Table,
    TextEncoding,
};

pub(super) fn open<R: Read + Seek + Send + 'static>(
    mut reader: R,
    encoding: Option<TextEncoding>,
    delimiter: Option<char>,
    header: HeaderRow,
) -> Result<Table, ReadError> {
    let (encoding, delimiter) = match (encoding, delimiter) {
        (Some(encoding), Some(delimiter)) => (encoding, delimiter),
        // Detect whatever the caller did not store.
        (encoding, delimiter) => {
            reader.seek(SeekFrom::Start(0))?;
            let sample = read_sample(&mut reader, SAMPLE_BYTES)?;
            let encoding = encoding.unwrap_or_else(|| sniff_encoding(&sample));
            let delimiter = delimiter.unwrap_or_else(|| {
                let text = decode_sample(&sample, encoding);
                sniff_delimiter(&text, sample.len() >= SAMPLE_BYTES, false)
            });
            (encoding, delimiter)
        }
    };
    let delimiter = match delimiter {
        ',' | ';' | '\t' | '|' => delimiter as u8,
        other => {
            return Err(ReadError::Mismatch {
                detected: Format::Csv,
                message: format!("{other:?} is not a CSV delimiter (one of , ; tab |)"),
            });
        }
    };
    reader.seek(SeekFrom::Start(0))?;
    let tracker = RowTracker::new(DecodingReader::new(reader, encoding), delimiter);
    let csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(tracker);
    let rows: Rows = Box::new(CsvRows {
        csv,
        record: csv::ByteRecord::new(),
        last_row: 0,
        done: false,
    });
    table_from_rows(rows, header)
}

struct CsvRows<R> {
    csv: csv::Reader<RowTracker<R>>,
    record: csv::ByteRecord,
    last_row: u64,
    done: bool,
}

impl<R: Read> Iterator for CsvRows<R> {
    type Item = Result<SourceRow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.csv.read_byte_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    let start = self.record.position().map_or(0, csv::Position::byte);
                    let end = self.csv.position().byte();
                    let tracker = self.csv.get_mut();
                    let row = tracker
                        .row_of_record(start, end)
                        .unwrap_or(self.last_row + 1)
                        .max(self.last_row + 1);
                    self.last_row = row;
                    if tracker.was_truncated(end) {
                        return Some(Err(ReadError::RecordTooLarge { row }));
                    }
                    if self.record.len() > MAX_COLUMNS {
                        return Some(Err(ReadError::TooManyColumns {
                            row,
                            columns: self.record.len(),
                        }));
                    }
                    let cells: Vec<Cell> = self
                        .record
                        .iter()
                        .map(|field| Cell {
                            text: String::from_utf8_lossy(field).trim().to_owned(),
                            numeric: false,
                        })
                        .collect();
                    if cells.iter().any(|cell| !cell.text.is_empty()) {
                        return Some(Ok(SourceRow { number: row, cells }));
                    }
                }
                Err(error) => {
                    // The csv crate stops after an I/O error; nothing else can go wrong with a
                    // flexible reader over byte records.
                    self.done = true;
                    let row = self.last_row + 1;
                    return Some(Err(match error.into_kind() {
                        csv::ErrorKind::Io(error) => ReadError::Io(error),
                        other => ReadError::Csv {
                            row,
                            message: format!("{other:?}"),
                        },
                    }));
                }
            }
        }
        None
    }
}

/// Where the tracker is within the CSV syntax, mirroring `csv_core` with its default settings
/// (double quotes, `""` as an escaped quote, CR, LF or CRLF ending a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Sits between the decoder and the `csv` crate, reading the same bytes the parser will. It
/// numbers rows as a spreadsheet does (every line ending outside quotes starts a new row, blank
/// lines included, which the parser skips without a trace), and cuts a record longer than
/// [`MAX_RECORD_BYTES`] short (closing an open quote so the parser stays in step) and drops the
/// rest of it, so that memory stays bounded and the next record reads normally.
struct RowTracker<R> {
    inner: R,
    delimiter: u8,
    syntax: Syntax,
    after_cr: bool,
    at_row_start: bool,
    /// The number of the row being read.
    row: u64,
    record_bytes: usize,
    dropping: bool,
    /// Bytes handed to the parser so far.
    position: u64,
    /// Where each non-blank row starts in the parser's input, with its number; only rows the
    /// parser has not returned yet, so at most a buffer's worth.
    row_starts: VecDeque<(u64, u64)>,
    /// Where records were cut short.
    truncations: VecDeque<u64>,
}

impl<R: Read> RowTracker<R> {
    fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            delimiter,
            syntax: Syntax::FieldStart,
            after_cr: false,
            at_row_start: true,
            row: 1,
            record_bytes: 0,
            dropping: false,
            position: 0,
            row_starts: VecDeque::new(),
            truncations: VecDeque::new(),
        }
    }

    /// The number of the row of the record the parser read from `start` to `end` of its input.
    /// `start` may lie before blank lines the parser skipped: the record's row is the first one
    /// starting at or after it.
    fn row_of_record(&mut self, start: u64, end: u64) -> Option<u64> {
        while self.row_starts.front().is_some_and(|&(at, _)| at < start) {
            self.row_starts.pop_front();
        }
        match self.row_starts.front() {
            Some(&(at, row)) if at <= end => {
                self.row_starts.pop_front();
                Some(row)
            }
            _ => None,
        }
    }

    /// Whether the record that ended at `end` was cut short.
    fn was_truncated(&mut self, end: u64) -> bool {
        let mut truncated = false;
        while self.truncations.front().is_some_and(|&at| at <= end) {
            self.truncations.pop_front();
            truncated = true;
        }
        truncated
    }

    /// Advances the syntax over one byte; true if the byte ends a record.
    fn step(&mut self, byte: u8) -> bool {
        match self.syntax {
            Syntax::Quoted => {
                if byte == b'"' {
                    self.syntax = Syntax::QuoteInQuoted;
                }
                return false;
            }
            Syntax::QuoteInQuoted if byte == b'"' => {
                self.syntax = Syntax::Quoted;
                return false;
            }
            _ => {}
        }
        if byte == b'\n' || byte == b'\r' {
            self.syntax = Syntax::FieldStart;
            return true;
        }
        self.syntax = if byte == self.delimiter {
            Syntax::FieldStart
        } else if byte == b'"' && self.syntax == Syntax::FieldStart {
            Syntax::Quoted
        } else {
            Syntax::Unquoted
        };
        false
    }
}

impl<R: Read> Read for RowTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let read = self.inner.read(buf)?;
            if read == 0 {
                return Ok(0);
            }
            // Filter in place: `kept` never overtakes `index`.
            let mut kept = 0;
            for index in 0..read {
                let Some(&byte) = buf.get(index) else { break };
                let before = self.syntax;
                let ends_record = self.step(byte);
                let mut keep = true;
                if ends_record {
                    // CRLF is one line ending.
                    let new_line = !(byte == b'\n' && self.after_cr);
                    self.after_cr = byte == b'\r';
                    if new_line {
                        self.row += 1;
                    }
                    self.at_row_start = true;
                    self.record_bytes = 0;
                    self.dropping = false;
                } else {
                    self.after_cr = false;
                    if self.at_row_start {
                        self.at_row_start = false;
                        self.row_starts
                            .push_back((self.position + kept as u64, self.row));
                    }
                    if self.dropping {
                        keep = false;
                    } else if self.record_bytes >= MAX_RECORD_BYTES {
                        self.dropping = true;
                        self.truncations.push_back(self.position + kept as u64);
                        keep = false;
                        if before == Syntax::Quoted {
                            // Close the quote the parser is inside of, in this byte's place.
                            if let Some(slot) = buf.get_mut(kept) {
                                *slot = b'"';
                                kept += 1;
                            }
                        }
                    } else {
                        self.record_bytes += 1;
                    }
                }
                if keep {
                    if let Some(slot) = buf.get_mut(kept) {
                        *slot = byte;
                    }
                    kept += 1;
                }
            }
            self.position += kept as u64;
            // Everything in this chunk was dropped: read on rather than signal the end.
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn table(bytes: &[u8], delimiter: char) -> Table {
        open(
            Cursor::new(bytes.to_vec()),
            Some(TextEncoding::Utf8),
            Some(delimiter),
            HeaderRow::Detect,
        )
        .unwrap()
    }

    fn rows(table: Table) -> Vec<(u64, Vec<String>)> {
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

    #[test]
    fn rows_are_numbered_like_a_spreadsheet() {
        let text = b"name,note\r\n\r\nAda,\"two\r\nlines\"\r\n  ,  \r\nBob,x\rCy,y\n";
        let table = table(text, ',');
        assert_eq!(table.headers, ["name", "note"]);
        assert_eq!(
            rows(table),
            [
                (3, vec!["Ada".to_owned(), "two\r\nlines".to_owned()]),
                (5, vec!["Bob".to_owned(), "x".to_owned()]),
                (6, vec!["Cy".to_owned(), "y".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_record_at_the_limit_passes_and_one_past_it_fails() {
        let mut text = b"name,note\n".to_vec();
        let at_limit = "a".repeat(MAX_RECORD_BYTES - 2);
        text.extend_from_slice(format!("x,{at_limit}\n").as_bytes());
        let past_limit = "b".repeat(MAX_RECORD_BYTES - 1);
        text.extend_from_slice(format!("y,{past_limit}\n").as_bytes());
        text.extend_from_slice(b"z,after\n");
        let table = table(&text, ',');
        let results: Vec<_> = table.rows.collect();
        assert_eq!(results.len(), 3);
        let first = results[0].as_ref().unwrap();
        assert_eq!(
            (first.number, first.cells[1].text.len()),
            (2, MAX_RECORD_BYTES - 2)
        );
        assert!(matches!(
            results[1],
            Err(ReadError::RecordTooLarge { row: 3 })
        ));
        let last = results[2].as_ref().unwrap();
        assert_eq!((last.number, last.cells[0].text.as_str()), (4, "z"));
    }

    #[test]
    fn an_unbalanced_quote_is_cut_off_and_reading_goes_on() {
        // The quote opened in row 3 swallows everything after it, lines and all.
        let mut text = b"name,note\nAda,ok\nBob,\"open".to_vec();
        for _ in 0..(3 * MAX_RECORD_BYTES / 10) {
            text.extend_from_slice(b"\nCy,yyy");
        }
        let table = table(&text, ',');
        let results: Vec<_> = table.rows.collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].as_ref().unwrap().number, 2);
        assert!(matches!(
            results[1],
            Err(ReadError::RecordTooLarge { row: 3 })
        ));
    }

    #[test]
    fn a_long_quoted_field_is_cut_and_the_next_record_reads() {
        let mut text = b"name,note\n\"".to_vec();
        text.extend(std::iter::repeat_n(b'q', MAX_RECORD_BYTES * 2));
        text.extend_from_slice(b"\",\"x\"\"\ny\",z\nnext,row\n");
        let results: Vec<_> = table(&text, ',').rows.collect();
        assert_eq!(results.len(), 2);
        assert!(matches!(
            results[0],
            Err(ReadError::RecordTooLarge { row: 2 })
        ));
        let next = results[1].as_ref().unwrap();
        // The dropped part held a quoted line break: still one row.
        assert_eq!((next.number, next.cells[0].text.as_str()), (3, "next"));
    }

    #[test]
    fn too_many_columns_at_and_past_the_limit() {
        let header = vec!["h"; MAX_COLUMNS].join(",");
        let at_limit = vec!["1"; MAX_COLUMNS].join(",");
        let past_limit = vec!["1"; MAX_COLUMNS + 1].join(",");
        let text = format!("{header}\n{at_limit}\n{past_limit}\n");
        let table = table(text.as_bytes(), ',');
        assert_eq!(table.headers.len(), MAX_COLUMNS);
        let results: Vec<_> = table.rows.collect();
        assert_eq!(results[0].as_ref().unwrap().cells.len(), MAX_COLUMNS);
        assert!(matches!(
            results[1],
            Err(ReadError::TooManyColumns { row: 3, columns }) if columns == MAX_COLUMNS + 1
        ));
    }

    #[test]
    fn short_rows_are_padded_and_long_rows_keep_their_cells() {
        let table = table(b"a,b,c\n1\n1,2,3,4\n", ',');
        assert_eq!(table.headers, ["a", "b", "c", "Column 4"]);
        assert_eq!(
            rows(table),
            [
                (2, vec!["1".into(), "".into(), "".into(), "".into()]),
                (3, vec!["1".into(), "2".into(), "3".into(), "4".into()]),
            ]
        );
    }

    #[test]
    fn a_bad_delimiter_is_refused() {
        let result = open(
            Cursor::new(b"a".to_vec()),
            None,
            Some('x'),
            HeaderRow::Detect,
        );
        assert!(matches!(result, Err(ReadError::Mismatch { .. })));
    }
}
