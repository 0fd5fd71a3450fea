//! Readers for the contact files that operators upload: CSV (any of four delimiters, UTF-8,
//! UTF-16 or Windows-1252), XLSX, XLS, ODS and vCard.
//!
//! Importing is two steps, possibly minutes apart: [`detect`] looks at the file and says what it
//! is (the caller stores the [`Detected`] with the import job), then [`open`] reads it as a
//! [`Table`] of trimmed text cells whose rows stream one at a time. CSV and vCard files are read
//! in constant memory whatever their size (a 5,000,000-row CSV peaks at a few MB); XLSX and ODS
//! sheets stream from their archive on a reader thread (an XLSX file's shared strings are held
//! while it is read); XLS workbooks are loaded whole by calamine, which has no streaming reader
//! for them. Every reader is held to the caps of [`Limits`] — what it inflates, holds and reads,
//! and for how long — so that a hostile file is refused before it takes the server's memory.
//!
//! Row numbers are the ones an operator sees in a spreadsheet program: the header row is row 1,
//! the first data row row 2 (row 1 if there is no header row). Empty rows are skipped but keep
//! their numbers, so an error message about "row 7" points at the seventh line of the sheet; a
//! quoted CSV field with line breaks is still one row. In a vCard file contact N is row N + 1,
//! behind a virtual header row.
//!
//! This module does no I/O of its own beyond the reader it is given, and knows nothing of the
//! store: mapping columns onto contacts is the import job's business, helped by
//! [`suggest_mapping`].

mod cells;
mod columns;
mod csv_source;
pub mod limits;
mod ods;
mod ole;
mod reader_thread;
mod sniff;
mod suggest;
mod text;
mod vcard;
mod xls;
mod xlsx;
mod zip_container;

#[cfg(test)]
mod cap_tests;
#[cfg(test)]
mod tests;

use std::io::{Read, Seek};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use self::columns::column_label;
pub use self::limits::{Cap, Limits};
pub use self::suggest::{suggest_mapping, suggest_mapping_with_samples};
pub use self::vcard::HEADERS as VCARD_HEADERS;

/// The widest row accepted: a wider one is a [`ReadError::TooManyColumns`] for that row.
/// Roster keeps at most 100 custom fields per contact, so no real contact list comes close.
pub const MAX_COLUMNS: usize = 500;

/// The longest CSV record (or spreadsheet row, counting the text of its cells) accepted: a
/// longer one is a [`ReadError::RecordTooLarge`] for that row. The bound is what keeps memory
/// constant when a file has an unbalanced quote that swallows the rest of the file.
pub const MAX_RECORD_BYTES: usize = 65536;

/// The largest vCard accepted, from `BEGIN:VCARD` to `END:VCARD`. Larger than
/// [`MAX_RECORD_BYTES`] because phones export contact photos inline, base64-encoded.
pub const MAX_CARD_BYTES: usize = 1024 * 1024;

/// The kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
    Xls,
    Ods,
    Vcard,
}

/// The character encoding of a text file (CSV or vCard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TextEncoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "utf-8-bom")]
    Utf8Bom,
    /// With or without a byte order mark.
    #[serde(rename = "utf-16le")]
    Utf16Le,
    /// With or without a byte order mark.
    #[serde(rename = "utf-16be")]
    Utf16Be,
    /// What Excel on Windows writes for "CSV"; also read for ISO-8859-1, of which it is a superset
    /// in every printable character.
    #[serde(rename = "windows-1252")]
    Windows1252,
}

/// What [`detect`] found; stored by the caller (serde) and handed back to [`open`] later.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detected {
    pub format: Format,
    /// Text formats (CSV, vCard). `None` makes [`open`] detect it again.
    pub encoding: Option<TextEncoding>,
    /// CSV only: one of `,` `;` `\t` `|`. `None` makes [`open`] detect it again.
    pub delimiter: Option<char>,
    /// Spreadsheets: the names of the worksheets in workbook order (chart sheets left out).
    pub sheets: Vec<String>,
}

/// One cell's text, trimmed of surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    pub text: String,
    /// The spreadsheet stored a number (whole numbers come back without a fraction or exponent,
    /// so a phone number typed into Excel reads as "14155552671").
    pub numeric: bool,
}

/// One non-empty row of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    /// As a spreadsheet user counts rows; see the module documentation.
    pub number: u64,
    /// At least as many cells as [`Table::headers`] (short rows are padded with empty cells);
    /// more when a row is wider than the rows [`open`] looked at to name the columns, in which
    /// case [`column_label`] names the extra ones.
    pub cells: Vec<Cell>,
}

/// A file opened for reading.
pub struct Table {
    /// Column names; "Column 1", "Column 2"… when the file has no header row.
    pub headers: Vec<String>,
    pub has_header_row: bool,
    /// The data rows, in file order, empty rows left out. An `Err` concerns one row (or, for
    /// [`ReadError::is_fatal`] errors, the rest of the file); the rows after a row error still
    /// come, so the caller decides whether to stop.
    pub rows: Box<dyn Iterator<Item = Result<SourceRow, ReadError>> + Send>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("headers", &self.headers)
            .field("has_header_row", &self.has_header_row)
            .finish_non_exhaustive()
    }
}

/// Why a file, or one row of it, could not be read. The messages are written for the operator
/// who uploaded the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the file is empty")]
    Empty,
    #[error("unsupported file: {0}")]
    Unsupported(String),
    #[error("could not read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("row {row}: the row is longer than {max} bytes", max = MAX_RECORD_BYTES)]
    RecordTooLarge { row: u64 },
    #[error("row {row}: {columns} columns, more than the {max} allowed", max = MAX_COLUMNS)]
    TooManyColumns { row: u64, columns: usize },
    #[error("row {row}: {message}")]
    Csv { row: u64, message: String },
    #[error("the spreadsheet could not be read: {0}")]
    Spreadsheet(String),
    #[error("row {row}, column {column}: {message}")]
    Cell {
        row: u64,
        column: String,
        message: String,
    },
    #[error(
        "there is no sheet named {requested:?}; the workbook has {}",
        list_sheets(available)
    )]
    UnknownSheet {
        requested: String,
        available: Vec<String>,
    },
    #[error("the workbook has no worksheets")]
    NoSheets,
    #[error("row {row} (contact {card}): {message}")]
    Vcard {
        row: u64,
        card: u64,
        message: String,
    },
    #[error("the file was detected as {detected:?} but cannot be read as such: {message}")]
    Mismatch { detected: Format, message: String },
    /// A cap of [`Limits`] was passed: nothing more of the file is read.
    #[error("{}", cap.message(*limit))]
    OverCap { cap: Cap, limit: u64 },
}

impl ReadError {
    /// The row this error is about, if it is about one row.
    pub fn row(&self) -> Option<u64> {
        match self {
            ReadError::RecordTooLarge { row }
            | ReadError::TooManyColumns { row, .. }
            | ReadError::Csv { row, .. }
            | ReadError::Cell { row, .. }
            | ReadError::Vcard { row, .. } => Some(*row),
            _ => None,
        }
    }

    /// Whether no more rows will follow this error: the file itself is unreadable from here on.
    pub fn is_fatal(&self) -> bool {
        self.row().is_none()
    }
}

fn list_sheets(names: &[String]) -> String {
    if names.is_empty() {
        return "no worksheets".to_owned();
    }
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Looks at the file's content (the file name only breaks ties) and says what it is.
///
/// Spreadsheets are opened to list their worksheets, so a damaged workbook fails here rather than
/// later. The reader is left at an unspecified position.
pub fn detect<R: Read + Seek>(
    reader: &mut R,
    file_name: Option<&str>,
) -> Result<Detected, ReadError> {
    detect_with(reader, file_name, &Limits::default())
}

/// [`detect`], held to `limits`.
pub fn detect_with<R: Read + Seek>(
    reader: &mut R,
    file_name: Option<&str>,
    limits: &Limits,
) -> Result<Detected, ReadError> {
    sniff::detect(reader, file_name, limits)
}

/// Whether the first row of a CSV file or sheet names the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderRow {
    /// It does unless it looks like data: a phone number or an email address in one of its cells.
    #[default]
    Detect,
    /// The operator says it does.
    Present,
    /// The operator says it does not: the columns are "Column 1", "Column 2"…
    Absent,
}

/// Opens a file as a [`Table`]: the first visible worksheet, unless `sheet` names one
/// (spreadsheets only; ignored for text formats).
///
/// For CSV and spreadsheets, `open` reads the first rows to decide whether the first is a header
/// row and how many columns there are; an error in the very first row is returned here.
pub fn open<R: Read + Seek + Send + 'static>(
    reader: R,
    detected: &Detected,
    sheet: Option<&str>,
) -> Result<Table, ReadError> {
    open_with_header(reader, detected, sheet, HeaderRow::Detect)
}

/// [`open`], with the operator's word on whether the first row is a header row (vCard files
/// have fixed columns and ignore it).
pub fn open_with_header<R: Read + Seek + Send + 'static>(
    reader: R,
    detected: &Detected,
    sheet: Option<&str>,
    header: HeaderRow,
) -> Result<Table, ReadError> {
    open_with(reader, detected, sheet, header, &Limits::default())
}

/// [`open_with_header`], held to `limits`.
pub fn open_with<R: Read + Seek + Send + 'static>(
    reader: R,
    detected: &Detected,
    sheet: Option<&str>,
    header: HeaderRow,
    limits: &Limits,
) -> Result<Table, ReadError> {
    let mut table = match detected.format {
        Format::Csv => csv_source::open(reader, detected.encoding, detected.delimiter, header)?,
        Format::Vcard => vcard::open(reader, detected.encoding)?,
        Format::Xlsx => guarded(|| xlsx::open(reader, sheet, header, limits))?,
        Format::Xls => xls::open(reader, sheet, header, limits)?,
        Format::Ods => guarded(|| ods::open(reader, sheet, header, limits))?,
    };
    table.rows = Box::new(CappedRows {
        rows: table.rows,
        read: 0,
        limits: *limits,
        done: false,
    });
    Ok(table)
}

/// Runs a parser, turning a panic of a third-party parser (the ZIP and XML readers, calamine) on
/// a malformed file into an error for that file. The spreadsheet readers' threads end the same
/// way: their rows end with an error.
fn guarded<T>(parse: impl FnOnce() -> Result<T, ReadError>) -> Result<T, ReadError> {
    catch_unwind(AssertUnwindSafe(parse)).unwrap_or_else(|_| {
        Err(ReadError::Spreadsheet(
            "the spreadsheet is malformed".to_owned(),
        ))
    })
}

/// A table's rows, ending with [`Cap::Rows`] once there are too many: the cap holds while the
/// file is read, not after.
struct CappedRows {
    rows: Box<dyn Iterator<Item = Result<SourceRow, ReadError>> + Send>,
    read: u64,
    limits: Limits,
    done: bool,
}

impl Iterator for CappedRows {
    type Item = Result<SourceRow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let row = self.rows.next()?;
        self.read += 1;
        if self.read > self.limits.rows {
            self.done = true;
            return Some(Err(Cap::Rows.exceeded(&self.limits)));
        }
        Some(row)
    }
}
