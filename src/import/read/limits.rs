//! The caps that keep a hostile file from taking the server's memory or time.
//!
//! A spreadsheet is a compressed archive: a 1 MB XLSX can inflate to gigabytes, and a few bytes
//! of XML can claim a billion repeated rows. Every reader therefore counts what it inflates and
//! reads, and stops at the first cap it passes with [`ReadError::OverCap`] naming the cap and its
//! value (the API answers 413). docs/security.md lists them with the threat each answers.

use std::time::{Duration, Instant};

use super::ReadError;

/// One cap, by the name the documentation and error messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Data rows in one file (the import's row limit), counted while reading.
    Rows,
    /// The row number a sheet may reach: the format's own grid (XLSX and ODS 1,048,576, as in
    /// Excel and LibreOffice; XLS 65,536).
    SheetRows,
    /// Entries in the ZIP container of an XLSX or ODS file.
    ZipEntries,
    /// Bytes one entry of the container inflates to, as far as it is read.
    InflatedEntryBytes,
    /// Bytes all entries read from one file inflate to together.
    InflatedFileBytes,
    /// The longest piece of XML between two `<`: one tag with its attributes, or one text.
    XmlTokenBytes,
    /// Memory for what a spreadsheet reader keeps while it reads a sheet: an XLSX file's shared
    /// strings, cell formats and sheet list, an ODS file's sheet names and styles.
    HeldBytes,
    /// Size of an XLS file, which the XLS reader holds in memory whole.
    XlsFileBytes,
    /// Cells of an XLS workbook, over every sheet's used rectangle (the XLS reader lays each
    /// sheet out as a full grid).
    XlsCells,
    /// Bytes of an XLS workbook's shared string table (the XLS reader holds each string in a
    /// `String` of its own: 24 bytes for an empty one written in 3).
    XlsStringBytes,
    /// Time spent reading a file for its preview.
    PreviewSeconds,
}

impl Cap {
    /// The cap's name in documentation and messages.
    pub fn name(self) -> &'static str {
        match self {
            Cap::Rows => "rows",
            Cap::SheetRows => "sheet_rows",
            Cap::ZipEntries => "zip_entries",
            Cap::InflatedEntryBytes => "inflated_entry_bytes",
            Cap::InflatedFileBytes => "inflated_file_bytes",
            Cap::XmlTokenBytes => "xml_token_bytes",
            Cap::HeldBytes => "held_bytes",
            Cap::XlsFileBytes => "xls_file_bytes",
            Cap::XlsCells => "xls_cells",
            Cap::XlsStringBytes => "xls_string_bytes",
            Cap::PreviewSeconds => "preview_seconds",
        }
    }

    /// What passing the cap means, for the operator who uploaded the file.
    fn description(self) -> &'static str {
        match self {
            Cap::Rows => "the file has more data rows than an import takes",
            Cap::SheetRows => "the sheet has rows past the last row its format allows",
            Cap::ZipEntries => "the spreadsheet's archive has too many entries",
            Cap::InflatedEntryBytes => "a part of the spreadsheet inflates to too much data",
            Cap::InflatedFileBytes => "the spreadsheet inflates to too much data",
            Cap::XmlTokenBytes => "the spreadsheet holds one XML tag or text that is too long",
            Cap::HeldBytes => {
                "the workbook's shared strings and other parts held while reading take too much memory"
            }
            Cap::XlsFileBytes => "the XLS file is too large; save it as XLSX or CSV",
            Cap::XlsCells => "the XLS workbook has too many cells; save it as XLSX or CSV",
            Cap::XlsStringBytes => "the XLS workbook has too much text; save it as XLSX or CSV",
            Cap::PreviewSeconds => "reading the file took too long",
        }
    }

    /// The error for passing this cap.
    pub(super) fn exceeded(self, limits: &Limits) -> ReadError {
        ReadError::OverCap {
            cap: self,
            limit: limits.value(self),
        }
    }

    /// The message of [`ReadError::OverCap`].
    pub(super) fn message(self, limit: u64) -> String {
        format!("{} (cap {} = {limit})", self.description(), self.name())
    }
}

/// Data rows one file may hold: ten times the largest import measured (docs/BENCHMARKS.md),
/// and more than a 256 MiB upload of bare phone numbers can hold.
pub const MAX_ROWS: u64 = 10_000_000;
/// The last row of an XLSX or ODS sheet (Excel's and LibreOffice's grid).
pub const MAX_SHEET_ROWS: u64 = 1_048_576;
/// A real workbook has a few dozen entries; millions would make the archive's directory alone
/// take more memory than an import.
pub const MAX_ZIP_ENTRIES: u64 = 10_000;
/// A full Excel sheet (1,048,576 rows) of a dozen columns inflates to about 1 GiB of XML.
pub const MAX_INFLATED_ENTRY_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_INFLATED_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Excel holds at most 32,767 characters in a cell (at most 128 KiB of XML-escaped UTF-8); the
/// XML parser holds one token at a time, so this bounds its memory.
pub const MAX_XML_TOKEN_BYTES: u64 = 1024 * 1024;
/// About 2,000,000 distinct names and email addresses in an XLSX file's shared strings.
pub const MAX_HELD_BYTES: u64 = 64 * 1024 * 1024;
/// A full BIFF8 sheet of contacts (65,536 rows of a dozen columns) takes about 10 MiB.
pub const MAX_XLS_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// A full BIFF8 sheet of 65,536 contacts with 15 columns.
pub const MAX_XLS_CELLS: u64 = 1_000_000;
/// Some 200,000 distinct names and addresses.
pub const MAX_XLS_STRING_BYTES: u64 = 4 * 1024 * 1024;
/// Well below the request timeout (120 s), so that the answer names the cause.
pub const MAX_PREVIEW_TIME: Duration = Duration::from_secs(30);

/// The caps one reading of a file is held to; [`Limits::default`] holds the documented values.
/// Tests lower them to reach them with small files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub rows: u64,
    pub sheet_rows: u64,
    pub zip_entries: u64,
    pub inflated_entry_bytes: u64,
    pub inflated_file_bytes: u64,
    pub xml_token_bytes: u64,
    pub held_bytes: u64,
    pub xls_file_bytes: u64,
    pub xls_cells: u64,
    pub xls_string_bytes: u64,
    /// When reading must stop ([`Cap::PreviewSeconds`]); `None` for no deadline (an import
    /// committed as a job takes as long as it takes, and shows its progress).
    pub deadline: Option<(Instant, Duration)>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rows: MAX_ROWS,
            sheet_rows: MAX_SHEET_ROWS,
            zip_entries: MAX_ZIP_ENTRIES,
            inflated_entry_bytes: MAX_INFLATED_ENTRY_BYTES,
            inflated_file_bytes: MAX_INFLATED_FILE_BYTES,
            xml_token_bytes: MAX_XML_TOKEN_BYTES,
            held_bytes: MAX_HELD_BYTES,
            xls_file_bytes: MAX_XLS_FILE_BYTES,
            xls_cells: MAX_XLS_CELLS,
            xls_string_bytes: MAX_XLS_STRING_BYTES,
            deadline: None,
        }
    }
}

impl Limits {
    /// The default caps, with reading cut off [`MAX_PREVIEW_TIME`] from now.
    pub fn for_preview() -> Self {
        Self::with_time_limit(MAX_PREVIEW_TIME)
    }

    /// The default caps, with reading cut off `time` from now.
    pub fn with_time_limit(time: Duration) -> Self {
        Self {
            deadline: Some((Instant::now() + time, time)),
            ..Self::default()
        }
    }

    fn value(&self, cap: Cap) -> u64 {
        match cap {
            Cap::Rows => self.rows,
            Cap::SheetRows => self.sheet_rows,
            Cap::ZipEntries => self.zip_entries,
            Cap::InflatedEntryBytes => self.inflated_entry_bytes,
            Cap::InflatedFileBytes => self.inflated_file_bytes,
            Cap::XmlTokenBytes => self.xml_token_bytes,
            Cap::HeldBytes => self.held_bytes,
            Cap::XlsFileBytes => self.xls_file_bytes,
            Cap::XlsCells => self.xls_cells,
            Cap::XlsStringBytes => self.xls_string_bytes,
            Cap::PreviewSeconds => self.deadline.map_or(0, |(_, time)| time.as_secs()),
        }
    }

    /// `Err` once the deadline has passed.
    pub fn check_time(&self) -> Result<(), ReadError> {
        match self.deadline {
            Some((deadline, _)) if Instant::now() >= deadline => {
                Err(Cap::PreviewSeconds.exceeded(self))
            }
            _ => Ok(()),
        }
    }
}

/// Counts the bytes of what a reader keeps for the whole reading ([`Cap::HeldBytes`]).
pub(super) struct Held {
    bytes: u64,
    limits: Limits,
}

impl Held {
    pub(super) fn new(limits: &Limits) -> Self {
        Self {
            bytes: 0,
            limits: *limits,
        }
    }

    pub(super) fn take(&mut self, bytes: usize) -> Result<(), ReadError> {
        self.bytes += bytes as u64;
        if self.bytes > self.limits.held_bytes {
            return Err(Cap::HeldBytes.exceeded(&self.limits));
        }
        Ok(())
    }
}

/// What one string costs to hold in a `Vec<String>` or a map, beyond its text.
pub(super) const ENTRY_OVERHEAD: usize = 48;
